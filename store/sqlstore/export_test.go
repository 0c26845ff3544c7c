package sqlstore

// SchemaTables and FKCheckTables let store/sqlite's migrations be
// checked from the external test package (sqlstore_test).
var SchemaTables, FKCheckTables = schemaTables, fkCheckTables
