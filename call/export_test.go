package call

// SetHangupWrittenForTest runs f between a hangup's frame and the end of
// the call (nil: nothing), until the test ends.
func SetHangupWrittenForTest(cleanup func(func()), f func()) {
	hangupWritten = f
	cleanup(func() { hangupWritten = nil })
}
