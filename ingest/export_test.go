package ingest

// BadCases exposes the decoder's hostile corpus to the integration tests.
var BadCases = badCases

// TestNow is the fixed clock of the corpus's time-relative cases.
var TestNow = testNow
