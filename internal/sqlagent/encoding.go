package sqlagent

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/musterhq/muster"
)

// Encodings a script may come in, as decodeText names them.
const (
	encodingUTF8    = "UTF-8"
	encodingUTF16LE = "UTF-16LE"
	encodingUTF16BE = "UTF-16BE"
	encoding1252    = "Windows-1252"
)

// decodeText turns a script file's bytes into text. SSMS saves scripts as
// UTF-8 (with a byte order mark), as "Unicode" (UTF-16 with a byte order
// mark), or in the system's ANSI code page, Windows-1252 on Western
// systems: bytes that are not UTF-8 and carry no byte order mark are read as
// Windows-1252.
func decodeText(b []byte) (text, encoding string, err error) {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		b = b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		s, err := decodeUTF16(b[2:], false)
		return s, encodingUTF16LE, err
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		s, err := decodeUTF16(b[2:], true)
		return s, encodingUTF16BE, err
	}
	if utf8.Valid(b) {
		return string(b), encodingUTF8, nil
	}
	s, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return "", "", muster.Wrap(muster.EINVALID, err, "the file is neither UTF-8, UTF-16 nor Windows-1252 text")
	}
	return string(s), encoding1252, nil
}

// decodeUTF16 decodes UTF-16 without its byte order mark.
func decodeUTF16(b []byte, bigEndian bool) (string, error) {
	if len(b)%2 != 0 {
		return "", muster.Errorf(muster.EINVALID, "the file starts with a UTF-16 byte order mark but has an odd number of bytes")
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		if bigEndian {
			units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			units[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	return string(utf16.Decode(units)), nil
}
