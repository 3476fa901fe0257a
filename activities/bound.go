package activities

// maxEcho bounds how much of one input (a key, a name, a query, a URL) an
// error message or a measurement quotes (with clip.Bytes): the input comes
// from a runbook and may be huge, while the message lands in history,
// status and logs.
const maxEcho = 200
