package browsertest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestBrowserRendersAndScreenshots(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>t</title><p id="p">hello</p><script>document.getElementById("p").textContent += " from js"</script>`))
	}))
	defer ts.Close()
	ctx := New(t)
	var text string
	if err := chromedp.Run(ctx, chromedp.Navigate(ts.URL), chromedp.Text("#p", &text)); err != nil {
		t.Fatal(err)
	}
	if text != "hello from js" {
		t.Fatalf("page text %q: the browser did not run the page's script", text)
	}
	path := Screenshot(t, ctx, "hello.png")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatal("screenshot is not a PNG")
	}
}
