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
// Windows-1252. UTF-16 without a byte order mark, as bcp -w writes a
// query's output, is told by its NULs.
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
	if bigEndian, ok := utf16WithoutBOM(b); ok {
		s, err := decodeUTF16(b, bigEndian)
		if bigEndian {
			return s, encodingUTF16BE, err
		}
		return s, encodingUTF16LE, err
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

// utf16WithoutBOM reports whether b looks like UTF-16 written without a
// byte order mark (bcp -w writes it so), and in which byte order. T-SQL
// text holds no NUL character, while the ASCII letters that make up most
// of a script are a NUL and a letter each in UTF-16: NULs in at least half
// of the high bytes, and few in the low ones, say which order it is.
func utf16WithoutBOM(b []byte) (bigEndian, ok bool) {
	if len(b) < 2 || len(b)%2 != 0 || bytes.IndexByte(b, 0) < 0 {
		return false, false
	}
	var even, odd int // NULs at even and at odd offsets
	for i, c := range b {
		if c == 0 {
			if i%2 == 0 {
				even++
			} else {
				odd++
			}
		}
	}
	chars := len(b) / 2
	switch {
	case 2*odd >= chars && odd > 4*even:
		return false, true
	case 2*even >= chars && even > 4*odd:
		return true, true
	}
	return false, false
}
