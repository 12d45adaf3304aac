package relay

// SweepNow removes expired items at once (the sweeper does it every
// SweepEvery).
func (s *Server) SweepNow() { s.sweep() }

// ProofPayload is what a client signs for op.
var ProofPayload = proofPayload
