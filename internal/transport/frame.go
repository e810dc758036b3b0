package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"
)

// Stream protocol constants (see doc.go for the format).
const (
	// alpnProtocol names the stream protocol and its version in the TLS
	// handshake (ALPN): a node that speaks another version fails the
	// handshake rather than misreading frames.
	alpnProtocol = "coco-node/1"

	frameHeaderLen = 5 // kind u8 ‖ length u32
	frameIDLen     = 8 // the id u64 that starts forward, answer, refusal and cancel frames
	frameStatusLen = 2 // the status u16 of refusal and goodbye frames

	// maxFrameText bounds the explanation in a refusal or goodbye frame:
	// enough for any error this package writes, and a peer's text is not
	// worth more in a log line.
	maxFrameText = 1 << 10
	// maxBatchFrameBytes is where a sender stops filling a raft batch
	// frame. Frames are written whole, so a forward queued behind a
	// catch-up waits for at most one such frame rather than for
	// MaxBatchBytes; a single message larger than this still goes alone.
	maxBatchFrameBytes = 4 << 20

	writeBufferSize = 64 << 10
	readBufferSize  = 32 << 10
	// writeTimeout bounds one write to a connection: a peer that stops
	// reading (hung, or gone without a FIN) is then dropped and redialled
	// instead of holding the writer until TCP gives up.
	writeTimeout = 30 * time.Second
)

// frameKind is the first byte of a frame.
type frameKind uint8

const (
	frameBatch   frameKind = iota + 1 // 1 raft batch, sender → receiver
	frameForward                      // 2 forwarded request, sender → receiver
	frameAnswer                       // 3 forwarded response, receiver → sender
	frameRefusal                      // 4 forwarded request refused, receiver → sender
	frameCancel                       // 5 forwarded request abandoned, sender → receiver
	frameGoodbye                      // 6 connection refused, receiver → sender, then close
	frameHello                        // 7 connection accepted, receiver → sender, first frame
	numFrameKinds
)

func (k frameKind) String() string {
	switch k {
	case frameBatch:
		return "batch"
	case frameForward:
		return "forward"
	case frameAnswer:
		return "answer"
	case frameRefusal:
		return "refusal"
	case frameCancel:
		return "cancel"
	case frameGoodbye:
		return "goodbye"
	case frameHello:
		return "hello"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// frameLimit is the payload length a kind of frame may have in one
// direction; a kind without one (max 0 and not allowed) is refused.
type frameLimit struct {
	allowed  bool
	min, max uint32
}

// frameLimits says which kinds a reader accepts, and their lengths.
type frameLimits [numFrameKinds]frameLimit

var (
	// toReceiver are the frames a node reads on an inbound connection.
	toReceiver = frameLimits{
		frameBatch:   {true, 0, MaxBatchBytes}, // DecodeBatch explains a short one
		frameForward: {true, frameIDLen, frameIDLen + MaxForwardWireBytes},
		frameCancel:  {true, frameIDLen, frameIDLen},
	}
	// toSender are the frames a node reads on a connection it dialled.
	toSender = frameLimits{
		frameAnswer:  {true, frameIDLen, frameIDLen + MaxForwardWireBytes},
		frameRefusal: {true, frameIDLen + frameStatusLen, frameIDLen + frameStatusLen + maxFrameText},
		frameGoodbye: {true, frameStatusLen, frameStatusLen + maxFrameText},
		frameHello:   {true, 0, 0},
	}
)

// check refuses a frame of a kind or length l does not allow. The error
// of a frame too long for its kind matches ErrBatchTooLarge or
// ErrForwardTooLarge for batches and forwards (413), and ErrMalformedFrame
// otherwise (400).
func (l *frameLimits) check(kind frameKind, n uint32) error {
	if int(kind) >= len(l) || !l[kind].allowed {
		return fmt.Errorf("%w: unexpected %v frame", ErrMalformedFrame, kind)
	}
	lim := l[kind]
	switch {
	case n > lim.max && kind == frameBatch:
		return fmt.Errorf("%w: batch frame of %d bytes, the limit is %d", ErrBatchTooLarge, n, lim.max)
	case n > lim.max && (kind == frameForward || kind == frameAnswer):
		return fmt.Errorf("%w: %v frame of %d bytes, the limit is %d", ErrForwardTooLarge, kind, n, lim.max)
	case n > lim.max || n < lim.min:
		return fmt.Errorf("%w: %v frame of %d bytes, it takes %d to %d", ErrMalformedFrame, kind, n, lim.min, lim.max)
	}
	return nil
}

// frameReader reads frames from a connection. A frame's payload is read
// after its header, as the caller needs it (an id, then the rest), and
// only ever into memory in proportion to the bytes that arrived, whatever
// the header claims.
type frameReader struct {
	r   *bufio.Reader
	buf [frameHeaderLen + frameIDLen]byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, readBufferSize)}
}

// next reads the header of the next frame and checks it against limits.
// It returns io.EOF at a clean end between frames.
func (fr *frameReader) next(limits *frameLimits) (frameKind, uint32, error) {
	h := fr.buf[:frameHeaderLen]
	if _, err := io.ReadFull(fr.r, h); err != nil {
		return 0, 0, err
	}
	kind, n := frameKind(h[0]), binary.BigEndian.Uint32(h[1:])
	return kind, n, limits.check(kind, n)
}

// readID reads the id that starts a frame's payload.
func (fr *frameReader) readID() (uint64, error) {
	b := fr.buf[:frameIDLen]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return 0, noEOF(err)
	}
	return binary.BigEndian.Uint64(b), nil
}

// readPayload appends the next n payload bytes to buf. buf grows as the
// bytes arrive: a header that claims much and delivers little costs
// little.
func (fr *frameReader) readPayload(buf *bytes.Buffer, n int64) error {
	buf.Grow(int(min(n, readBufferSize)))
	got, err := buf.ReadFrom(io.LimitReader(fr.r, n))
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// discard skips the next n payload bytes.
func (fr *frameReader) discard(n int64) error {
	_, err := io.CopyN(io.Discard, fr.r, n)
	return noEOF(err)
}

// noEOF reports an end of stream inside a frame as the truncation it is.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseStatusText decodes the status u16 ‖ UTF-8 text that ends refusal
// and goodbye frames. The status is a refusal code: 400 to 599.
func parseStatusText(p []byte) (int, string, error) {
	if len(p) < frameStatusLen {
		return 0, "", fmt.Errorf("%w: %d bytes, no status", ErrMalformedFrame, len(p))
	}
	status, text := int(binary.BigEndian.Uint16(p)), p[frameStatusLen:]
	switch {
	case status < 400 || status > 599:
		return 0, "", fmt.Errorf("%w: refusal status %d", ErrMalformedFrame, status)
	case len(text) > maxFrameText:
		return 0, "", fmt.Errorf("%w: refusal text of %d bytes", ErrMalformedFrame, len(text))
	case !utf8.Valid(text):
		return 0, "", fmt.Errorf("%w: refusal text is not UTF-8", ErrMalformedFrame)
	}
	return status, string(text), nil
}

// outFrame is a frame queued for a connection's writer: everything but a
// raft batch, which the sender encodes straight from its queue.
type outFrame struct {
	kind   frameKind
	id     uint64 // forward, answer, refusal, cancel
	status int    // refusal, goodbye
	// body is the CBOR of a forward or answer, the text of a refusal or
	// goodbye (at most maxFrameText: see refusalText).
	body []byte
	// release is the forward budget the frame's request holds, given
	// back once the answer is written or discarded.
	release int64
}

// appendFrameHead appends f's frame header and fixed fields, everything
// but body.
func appendFrameHead(dst []byte, f *outFrame) []byte {
	n := len(f.body)
	switch f.kind {
	case frameForward, frameAnswer, frameCancel:
		n += frameIDLen
	case frameRefusal:
		n += frameIDLen + frameStatusLen
	case frameGoodbye:
		n += frameStatusLen
	}
	dst = append(dst, byte(f.kind))
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	switch f.kind {
	case frameForward, frameAnswer, frameCancel:
		dst = binary.BigEndian.AppendUint64(dst, f.id)
	case frameRefusal:
		dst = binary.BigEndian.AppendUint64(dst, f.id)
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.status))
	case frameGoodbye:
		dst = binary.BigEndian.AppendUint16(dst, uint16(f.status))
	}
	return dst
}

// refusalText is err's text as a refusal or goodbye carries it: clipped
// to maxFrameText on a character boundary.
func refusalText(err error) []byte {
	s := err.Error()
	if len(s) > maxFrameText {
		s = s[:maxFrameText]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return []byte(s)
}

// frameWriter buffers a connection's frames; it belongs to the
// connection's one writer goroutine. Frames go to the connection when the
// buffer is full or when the writer flushes, which it does only once
// nothing more is queued: under load many frames share a TLS record and
// a write system call.
type frameWriter struct {
	conn    net.Conn
	bw      *bufio.Writer
	head    []byte
	c       *counters
	renewed time.Time // when the write deadline was last pushed back
	yielded bool      // yield let others run since the last flush
}

func newFrameWriter(conn net.Conn, c *counters) *frameWriter {
	return &frameWriter{conn: conn, bw: bufio.NewWriterSize(conn, writeBufferSize), head: make([]byte, 0, 32), c: c}
}

// deadline keeps the write deadline writeTimeout ahead, renewing it at
// most every second rather than for every frame.
func (w *frameWriter) deadline() {
	if now := time.Now(); now.Sub(w.renewed) > time.Second {
		w.renewed = now
		_ = w.conn.SetWriteDeadline(now.Add(writeTimeout)) // a closed connection fails the write itself
	}
}

// write buffers f.
func (w *frameWriter) write(f *outFrame) error {
	w.deadline()
	w.head = appendFrameHead(w.head[:0], f)
	if _, err := w.bw.Write(w.head); err != nil {
		return err
	}
	_, err := w.bw.Write(f.body)
	w.c.frames.Add(1)
	return err
}

// writeRaw buffers b, a frame the caller encoded whole.
func (w *frameWriter) writeRaw(b []byte) error {
	w.deadline()
	_, err := w.bw.Write(b)
	w.c.frames.Add(1)
	return err
}

// yield is for a writer that found its queues empty with frames
// buffered: once per flush, it lets the goroutines that are ready to run
// (callers of Forward, handlers finishing) queue theirs first, and
// reports whether the writer should look at its queues again before it
// flushes. A flush is a TLS record and a system call whatever its size,
// so one more frame in it is almost free; Gosched returns at once when
// nothing else is ready, so an idle connection loses no time.
func (w *frameWriter) yield() bool {
	if w.yielded || w.bw.Buffered() == 0 {
		return false
	}
	w.yielded = true
	runtime.Gosched()
	return true
}

// flush sends what is buffered, if anything.
func (w *frameWriter) flush() error {
	w.yielded = false
	if w.bw.Buffered() == 0 {
		return nil
	}
	w.deadline()
	w.c.flushes.Add(1)
	return w.bw.Flush()
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBody() *bytes.Buffer {
	b := bodyPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// putBody returns a payload buffer to the pool unless it grew past what is
// worth keeping.
func putBody(b *bytes.Buffer) {
	if b.Cap() <= 4<<20 {
		bodyPool.Put(b)
	}
}
