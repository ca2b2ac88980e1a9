package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The helpers act on a tab's context from NewTab. Each is bounded by the
// step timeout (DefaultStepTimeout unless WithStepTimeout set another) and
// by the context's own; selectors are CSS selectors, and an action on a
// selector waits until a matching element exists (Click and SendKeys: until
// it is visible).

// step runs do on the tab with the step timeout. what says what was being
// done, for the error; a step that runs out of time says so.
func step[T any](ctx context.Context, what string, do func(context.Context) (T, error)) (T, error) {
	var zero T
	tb, err := tabOf(ctx)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	sctx, cancel := context.WithTimeout(ctx, tb.stepTimeout)
	defer cancel()
	v, err := do(sctx)
	switch {
	case err == nil:
		return v, nil
	case ctx.Err() != nil:
		return zero, fmt.Errorf("%s: the tab's context ended: %w", what, err)
	case sctx.Err() != nil:
		return zero, fmt.Errorf("%s: not done within %v: %w", what, tb.stepTimeout, err)
	}
	return zero, fmt.Errorf("%s: %w", what, err)
}

// run makes a step of one chromedp action.
func run[T any](action chromedp.Action[T]) func(context.Context) (T, error) {
	return func(ctx context.Context) (T, error) { return chromedp.Run(ctx, action) }
}

// Navigate loads url in the tab, waits for its load event and returns the
// HTTP status of the document. A page that does not load (a refused
// certificate, a refused connection) is an error that wraps
// chromedp.ErrPageLoad; an HTTP error status is not an error.
func Navigate(ctx context.Context, url string) (int, error) {
	resp, err := step(ctx, "navigate to "+url, run(chromedp.NavigateResponse(url)))
	if err != nil {
		return 0, err
	}
	if resp == nil {
		return 0, fmt.Errorf("navigate to %s: the browser reported no response", url)
	}
	return int(resp.Status), nil
}

// Text returns the visible text (innerText) of the first element matching
// selector.
func Text(ctx context.Context, selector string) (string, error) {
	return step(ctx, fmt.Sprintf("read the text of %q", selector), run(chromedp.Text(chromedp.CSS(selector))))
}

// WaitVisible waits until an element matching selector is visible.
func WaitVisible(ctx context.Context, selector string) error {
	_, err := step(ctx, fmt.Sprintf("wait for %q to be visible", selector), run(chromedp.WaitVisible(chromedp.CSS(selector))))
	return err
}

// Click clicks the first element matching selector with the mouse and
// returns; it does not wait for what the click starts (see ClickAndWait).
func Click(ctx context.Context, selector string) error {
	_, err := step(ctx, fmt.Sprintf("click %q", selector), run(chromedp.Click(chromedp.CSS(selector))))
	return err
}

// ClickAndWait clicks the first element matching selector (a link, a form's
// submit button), waits for the page it leads to and returns that page's
// HTTP status. A click that loads no new page is an error once the step
// timeout has passed.
func ClickAndWait(ctx context.Context, selector string) (int, error) {
	what := fmt.Sprintf("click %q and wait for the next page", selector)
	resp, err := step(ctx, what, func(ctx context.Context) (*network.Response, error) {
		return chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector)))
	})
	if err != nil {
		return 0, err
	}
	if resp == nil {
		return 0, fmt.Errorf("%s: the browser reported no response", what)
	}
	return int(resp.Status), nil
}

// SetValue sets the value of the first form field matching selector at
// once, as a script would (no key events).
func SetValue(ctx context.Context, selector, value string) error {
	_, err := step(ctx, fmt.Sprintf("set the value of %q", selector), run(chromedp.SetValue(chromedp.CSS(selector), value)))
	return err
}

// SendKeys focuses the first element matching selector and types text into
// it, key by key, as a person would.
func SendKeys(ctx context.Context, selector, text string) error {
	_, err := step(ctx, fmt.Sprintf("type into %q", selector), run(chromedp.SendKeys(chromedp.CSS(selector), text)))
	return err
}

// Screenshot writes a PNG of the whole page (beyond the window's height)
// to path, creating its directory.
func Screenshot(ctx context.Context, path string) error {
	png, err := step(ctx, "take a screenshot", run(chromedp.FullScreenshot(100)))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the screenshot's directory: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("write the screenshot: %w", err)
	}
	return nil
}

// Cookies returns the cookies the browser would send to the tab's current
// page (and its frames), HttpOnly ones included, with their attributes.
func Cookies(ctx context.Context) ([]*network.Cookie, error) {
	res, err := step(ctx, "read the cookies", func(ctx context.Context) (network.GetCookiesResult, error) {
		return chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	})
	return res.Cookies, err
}
