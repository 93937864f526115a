package master

// Limits the external tests check the defaults against.
const (
	HandshakeTimeout  = readHeaderTimeout
	ReadHeaderTimeout = readHeaderTimeout
	MaxAnonymousBody  = maxAnonymousBody
)

// UploadTurns counts the uploads in progress or waiting their turn, by
// target and kind.
func UploadTurns(m *Main) int {
	m.uploads.mu.Lock()
	defer m.uploads.mu.Unlock()
	return len(m.uploads.perTarget)
}
