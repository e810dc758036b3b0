package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// frameHeader is the header of a frame of kind with n payload bytes.
func frameHeader(kind frameKind, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{byte(kind)}, n)
}

// encodeFrame is f's whole encoding.
func encodeFrame(f *outFrame) []byte { return append(appendFrameHead(nil, f), f.body...) }

// sampleFrames are one frame of each kind, each with the limits of the
// direction it travels in.
func sampleFrames(t testing.TB) []struct {
	f      outFrame
	limits *frameLimits
} {
	batch, err := AppendBatch(nil, sampleBatch())
	if err != nil {
		t.Fatal(err)
	}
	req, err := EncodeForwardedRequest(sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := EncodeForwardedResponse(sampleResponse())
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		f      outFrame
		limits *frameLimits
	}{
		{outFrame{kind: frameBatch, body: batch}, &toReceiver},
		{outFrame{kind: frameForward, id: 1<<63 + 5, body: req}, &toReceiver},
		{outFrame{kind: frameCancel, id: 7}, &toReceiver},
		{outFrame{kind: frameAnswer, id: 5, body: resp}, &toSender},
		{outFrame{kind: frameRefusal, id: 6, status: http.StatusNotImplemented, body: []byte("no handler: ä")}, &toSender},
		{outFrame{kind: frameGoodbye, status: http.StatusForbidden, body: []byte("not a peer")}, &toSender},
		{outFrame{kind: frameHello}, &toSender},
	}
}

// readFrame reads one frame as the transport's readers do: the id first
// for the kinds that have one, then the rest.
func readFrame(fr *frameReader, limits *frameLimits) (outFrame, error) {
	kind, n, err := fr.next(limits)
	if err != nil {
		return outFrame{kind: kind}, err
	}
	f := outFrame{kind: kind}
	rest := int64(n)
	switch kind {
	case frameForward, frameAnswer, frameRefusal, frameCancel:
		if f.id, err = fr.readID(); err != nil {
			return f, err
		}
		rest -= frameIDLen
	}
	var buf bytes.Buffer
	if err := fr.readPayload(&buf, rest); err != nil {
		return f, err
	}
	f.body = buf.Bytes()
	switch kind {
	case frameRefusal, frameGoodbye:
		status, text, err := parseStatusText(f.body)
		if err != nil {
			return f, err
		}
		f.status, f.body = status, []byte(text)
	}
	return f, nil
}

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	samples := sampleFrames(t)
	for _, s := range samples {
		stream = append(stream, encodeFrame(&s.f)...)
	}
	fr := newFrameReader(bytes.NewReader(stream))
	for _, s := range samples {
		got, err := readFrame(fr, s.limits)
		if err != nil {
			t.Fatalf("%v: %v", s.f.kind, err)
		}
		if got.kind != s.f.kind || got.id != s.f.id || got.status != s.f.status || !bytes.Equal(got.body, s.f.body) {
			t.Fatalf("%v: read back as %+v", s.f.kind, got)
		}
	}
	if _, _, err := fr.next(&toSender); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFrameRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		raw    []byte
		limits *frameLimits
		want   error
	}{
		"unknown kind":          {frameHeader(0, 0), &toReceiver, ErrMalformedFrame},
		"kind 200":              {frameHeader(200, 0), &toSender, ErrMalformedFrame},
		"answer to a receiver":  {frameHeader(frameAnswer, 8), &toReceiver, ErrMalformedFrame},
		"batch to a sender":     {frameHeader(frameBatch, 8), &toSender, ErrMalformedFrame},
		"batch too large":       {frameHeader(frameBatch, MaxBatchBytes+1), &toReceiver, ErrBatchTooLarge},
		"forward too large":     {frameHeader(frameForward, frameIDLen+MaxForwardWireBytes+1), &toReceiver, ErrForwardTooLarge},
		"answer too large":      {frameHeader(frameAnswer, 0xffffffff), &toSender, ErrForwardTooLarge},
		"forward without id":    {frameHeader(frameForward, 7), &toReceiver, ErrMalformedFrame},
		"long cancel":           {frameHeader(frameCancel, 9), &toReceiver, ErrMalformedFrame},
		"long hello":            {frameHeader(frameHello, 1), &toSender, ErrMalformedFrame},
		"long goodbye":          {frameHeader(frameGoodbye, frameStatusLen+maxFrameText+1), &toSender, ErrMalformedFrame},
		"goodbye without code":  {frameHeader(frameGoodbye, 1), &toSender, ErrMalformedFrame},
		"goodbye status 200":    {append(frameHeader(frameGoodbye, 2), 0, 200), &toSender, ErrMalformedFrame},
		"goodbye not UTF-8":     {append(frameHeader(frameGoodbye, 3), 1, 0x90, 0xff), &toSender, ErrMalformedFrame},
		"truncated header":      {[]byte{byte(frameBatch), 0, 0}, &toReceiver, io.ErrUnexpectedEOF},
		"truncated payload":     {append(frameHeader(frameBatch, 10), 1, 2, 3), &toReceiver, io.ErrUnexpectedEOF},
		"truncated id":          {append(frameHeader(frameCancel, 8), 1, 2, 3), &toReceiver, io.ErrUnexpectedEOF},
		"truncated refusal":     {append(frameHeader(frameRefusal, 12), 0, 0, 0, 0, 0, 0, 0, 1, 1), &toSender, io.ErrUnexpectedEOF},
		"refusal status 99":     {append(frameHeader(frameRefusal, 10), 0, 0, 0, 0, 0, 0, 0, 1, 0, 99), &toSender, ErrMalformedFrame},
		"goodbye status 0xffff": {append(frameHeader(frameGoodbye, 2), 0xff, 0xff), &toSender, ErrMalformedFrame},
	} {
		_, err := readFrame(newFrameReader(bytes.NewReader(c.raw)), c.limits)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if status := refusalStatus(ErrForwardTooLarge); status != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: status %d", status)
	}
}

// A header that claims much costs what arrives, not what it claims.
func TestReadPayloadAllocatesWhatArrives(t *testing.T) {
	raw := append(frameHeader(frameBatch, MaxBatchBytes), make([]byte, 100)...)
	fr := newFrameReader(bytes.NewReader(raw))
	if _, _, err := fr.next(&toReceiver); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := fr.readPayload(&buf, MaxBatchBytes); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%v, want io.ErrUnexpectedEOF", err)
	}
	if buf.Cap() > 2*readBufferSize {
		t.Fatalf("read 100 bytes into a buffer of %d", buf.Cap())
	}
}

func TestRefusalText(t *testing.T) {
	long := errors.New(strings.Repeat("é", maxFrameText))
	text := refusalText(long)
	if len(text) > maxFrameText || !strings.HasPrefix(long.Error(), string(text)) {
		t.Fatalf("clipped to %d bytes", len(text))
	}
	if _, _, err := parseStatusText(append([]byte{1, 0x90}, text...)); err != nil {
		t.Fatalf("a clipped text does not parse: %v", err)
	}
}

// FuzzReadFrame reads arbitrary bytes as a stream of frames in either
// direction: it never panics, allocates in proportion to the input
// whatever the headers claim, and what it accepts re-encodes to the bytes
// it read.
func FuzzReadFrame(f *testing.F) {
	var all []byte
	for _, s := range sampleFrames(f) {
		b := encodeFrame(&s.f)
		f.Add(b)
		f.Add(b[:len(b)-1])
		all = append(all, b...)
	}
	f.Add(all)
	f.Add(frameHeader(frameBatch, MaxBatchBytes))
	f.Add(frameHeader(frameAnswer, 0xffffffff))
	f.Add(append(frameHeader(frameGoodbye, 4), 1, 0x93, 'h', 'i'))
	f.Add(append(frameHeader(frameRefusal, 10), 0, 0, 0, 0, 0, 0, 0, 1, 0, 99))
	f.Add(frameHeader(42, 3))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, limits := range []*frameLimits{&toReceiver, &toSender} {
			fr := newFrameReader(bytes.NewReader(b))
			rest := b
			for {
				kind, n, err := fr.next(limits)
				if err != nil {
					break
				}
				if lim := limits[kind]; !lim.allowed || n < lim.min || n > lim.max {
					t.Fatalf("accepted a %v frame of %d bytes", kind, n)
				}
				var buf bytes.Buffer
				err = fr.readPayload(&buf, int64(n))
				if buf.Cap() > 2*readBufferSize+4*len(b) {
					t.Fatalf("%d bytes of input took a buffer of %d", len(b), buf.Cap())
				}
				if err != nil {
					if buf.Len() >= int(n) {
						t.Fatalf("payload of %d bytes read whole, and %v", n, err)
					}
					break
				}
				whole := append(frameHeader(kind, n), buf.Bytes()...)
				if !bytes.HasPrefix(rest, whole) {
					t.Fatal("the frame read is not the input")
				}
				rest = rest[len(whole):]
				p := buf.Bytes()
				switch kind {
				case frameRefusal:
					if status, text, err := parseStatusText(p[frameIDLen:]); err == nil {
						f := outFrame{kind: kind, id: binary.BigEndian.Uint64(p), status: status, body: []byte(text)}
						if !bytes.Equal(encodeFrame(&f), whole) {
							t.Fatal("a refusal does not re-encode to its input")
						}
					}
				case frameGoodbye:
					if status, text, err := parseStatusText(p); err == nil {
						f := outFrame{kind: kind, status: status, body: []byte(text)}
						if !bytes.Equal(encodeFrame(&f), whole) {
							t.Fatal("a goodbye does not re-encode to its input")
						}
					}
				}
			}
		}
	})
}
