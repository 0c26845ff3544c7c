# Conveniences; the README's two commands need none of this.
.PHONY: test screenshots

test:
	go test ./...

# Refresh the console screenshots in docs/screenshots from the browser
# end-to-end test (needs Chromium: apt-get install chromium).
screenshots:
	mkdir -p docs/screenshots
	POMONA_SCREENSHOTS=$(CURDIR)/docs/screenshots go test ./server -run 'TestConsoleInChromium' -count=1
	rm -f docs/screenshots/failed.png
