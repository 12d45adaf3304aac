package chat

// PendingRequestTTL is how long a friend request waits for an answer.
const PendingRequestTTL = pendingRequestTTL

// SetPendingLimit changes how many friend requests may wait in all.
func SetPendingLimit(s *Service, n int) { s.maxPending = n }

// StoredAvatars counts the avatars s keeps on disk.
func StoredAvatars(s *Service) int {
	ids, _ := s.storedAvatars(s.ctx)
	return len(ids)
}
