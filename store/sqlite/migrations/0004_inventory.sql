-- What the device's answers revealed (JSON by section: device_information,
-- security_info, profiles, certificates, managed_apps), with their times.
ALTER TABLE enrollments ADD COLUMN inventory BLOB;
