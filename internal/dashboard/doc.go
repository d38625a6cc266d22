// Package dashboard owns mecctl's web dashboard: the embedded page and the
// loopback-only proxy that signs its calls to the API.
//
// It is mecctl's web dashboard: an embedded page (plain
// HTML, CSS and JavaScript, no build step) and a same-origin proxy that
// forwards the page's API calls to the mecd API, signed with the user's
// credentials in this process. The browser never sees a credential.
//
// The proxy forwards the API's routes only (internal/api/openapi.yaml),
// and only for the page itself: it serves loopback Host names alone
// (against DNS rebinding) and wants a custom header on every API call,
// which another site's page cannot send without a CORS preflight that is
// never granted.
package dashboard
