// Package front is what the fronts share: the Env the node gives them
// (the domain and the node's gate and services), the error answers
// (APIError, the mapping of core error kinds to HTTP statuses), strict
// JSON bodies, the data-plane router, request info for the audit record,
// and the Endpoint declarations by which every route states who may call
// it.
package front
