package server_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// TestAttackSignInConcurrentGuessesAreLimited: wrong passwords for one
// account sent all at once, with one sign-in cookie and its CSRF token
// (nothing else is needed: the state is not one-time), through the real
// listener. The account's limit is 5 failures per window; before the
// limits counted the attempt ahead of the check, every request read the
// same count and was checked (about 40 of 40 answered 401).
func TestAttackSignInConcurrentGuessesAreLimited(t *testing.T) {
	w := newWorld(t, true)
	d := w.device(t, "iPhone")
	login := w.e.URL + "/login/" + w.tenant
	res, err := d.HTTP.Get(login + "?user-identifier=bob%40example.com")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page: %.300s", page)
	}
	const n = 40
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			form := url.Values{"csrf": {string(m[1])}, "password": {"guess-" + strings.Repeat("x", i)}}
			req, _ := http.NewRequest("POST", login, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			<-start
			r, err := d.HTTP.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[0]++
				return
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			codes[r.StatusCode]++
		}(i)
	}
	close(start)
	wg.Wait()
	if codes[401] > 5 || codes[401]+codes[429] != n {
		t.Fatalf("answers %v: want at most 5 passwords checked (401) and the rest refused (429)", codes)
	}
	// The account stays locked, for its right password too.
	form := url.Values{"csrf": {string(m[1])}, "password": {"bob-password"}}
	r, err := d.HTTP.PostForm(login, form)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 429 {
		t.Fatalf("right password after the flood: %d, want 429", r.StatusCode)
	}
}
