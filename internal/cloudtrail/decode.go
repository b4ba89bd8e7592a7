package cloudtrail

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unsafe"
)

// DefaultMaxPayloadBytes is the default cap on the decompressed size of one
// CloudWatch Logs payload. CloudWatch Logs delivers at most about 1 MiB of
// log events per payload (CloudTrail records are at most 256 KiB each), so
// 16 MiB leaves ample room while bounding the memory a hostile or corrupt
// gzip stream can claim.
const DefaultMaxPayloadBytes = 16 << 20

// MaxItemErrors is the number of ItemErrors a Batch keeps. Further item
// failures are still counted in Batch.Malformed.
const MaxItemErrors = 100

// ErrPayloadTooLarge is wrapped by the error returned when a decompressed
// payload exceeds Decoder.MaxPayloadBytes.
var ErrPayloadTooLarge = errors.New("decompressed payload too large")

// Source identifies the input shape a record or error came from.
type Source uint8

// Input shapes.
const (
	SourceUnknown     Source = iota // not set
	SourceEventBridge               // EventBridge "AWS API Call via CloudTrail" event
	SourceCWL                       // CloudWatch Logs subscription payload delivered to Lambda
	SourceKinesis                   // CloudWatch Logs payload carried by a Kinesis record
)

// String returns a short name for the source.
func (s Source) String() string {
	switch s {
	case SourceEventBridge:
		return "eventbridge"
	case SourceCWL:
		return "cloudwatch-logs"
	case SourceKinesis:
		return "kinesis"
	default:
		return "unknown"
	}
}

// ItemError reports one item (a log event, a Kinesis record, an EventBridge
// event's detail) that could not be decoded. The rest of the batch is
// unaffected.
type ItemError struct {
	Source Source // input shape
	// ID is the log event id, the Kinesis eventID or the EventBridge event
	// id, when known.
	ID string
	// SequenceNumber is the Kinesis sequence number of the carrying record
	// (Kinesis input only): report it as a batch item failure.
	SequenceNumber string
	Err            error // the cause
}

// Error describes the failed item and its cause.
func (e *ItemError) Error() string {
	var sb strings.Builder
	sb.WriteString("cloudtrail: ")
	sb.WriteString(e.Source.String())
	sb.WriteString(" item")
	if e.ID != "" {
		sb.WriteString(" ")
		sb.WriteString(e.ID)
	}
	if e.SequenceNumber != "" {
		sb.WriteString(" (sequence number ")
		sb.WriteString(e.SequenceNumber)
		sb.WriteString(")")
	}
	sb.WriteString(": ")
	if e.Err != nil {
		sb.WriteString(strings.TrimPrefix(e.Err.Error(), "cloudtrail: "))
	} else {
		sb.WriteString("unknown error")
	}
	return sb.String()
}

// Unwrap returns the cause.
func (e *ItemError) Unwrap() error { return e.Err }

// Batch accumulates what the decoders produce for one Lambda invocation.
// Decoder methods append to it, so one Batch can collect several payloads.
type Batch struct {
	// Records holds the records that passed the pre-filter and decoded.
	Records []Record
	// Payloads counts the payloads examined: CloudWatch Logs payloads
	// (one per Lambda CWL event or Kinesis record) and EventBridge events.
	Payloads int
	// Events counts the CloudTrail records seen: log events and EventBridge
	// details, whether or not they were decoded.
	Events int
	// Filtered counts the records the pre-filter rejected without decoding.
	Filtered int
	// Ignored counts CONTROL_MESSAGE payloads and EventBridge events that
	// do not carry a CloudTrail record.
	Ignored int
	// Malformed counts items that could not be decoded.
	Malformed int
	// Errors holds the first MaxItemErrors item failures.
	Errors []*ItemError
}

// Reset empties b, keeping the Records capacity.
func (b *Batch) Reset() {
	clear(b.Records)
	*b = Batch{Records: b.Records[:0]}
}

func (b *Batch) addError(e *ItemError) {
	b.Malformed++
	if len(b.Errors) < MaxItemErrors {
		b.Errors = append(b.Errors, e)
	}
}

// batchMark records the state of a Batch so that a payload that turns out
// to be a control message can be rolled back.
type batchMark struct {
	records, events, filtered, malformed, errors int
}

func (b *Batch) mark() batchMark {
	return batchMark{len(b.Records), b.Events, b.Filtered, b.Malformed, len(b.Errors)}
}

func (b *Batch) rollback(m batchMark) {
	clear(b.Records[m.records:])
	b.Records = b.Records[:m.records]
	b.Events, b.Filtered, b.Malformed = m.events, m.filtered, m.malformed
	clear(b.Errors[m.errors:])
	b.Errors = b.Errors[:m.errors]
}

// Decoder decodes CloudTrail deliveries. The zero value is ready to use and
// a Decoder is safe for concurrent use.
type Decoder struct {
	// MaxPayloadBytes caps the decompressed size of one CloudWatch Logs
	// payload; zero or negative means DefaultMaxPayloadBytes.
	MaxPayloadBytes int
	// DecodeAll disables the pre-filter so that every record is decoded.
	// It is meant for tests and troubleshooting; the detector leaves it off.
	DecodeAll bool
}

func (d *Decoder) maxPayload() int {
	if d == nil || d.MaxPayloadBytes <= 0 {
		return DefaultMaxPayloadBytes
	}
	return d.MaxPayloadBytes
}

func (d *Decoder) prefilter(raw []byte) bool {
	return (d != nil && d.DecodeAll) || MayBeInstanceSession(raw)
}

// DecodeEventBridge decodes an EventBridge event whose detail is a
// CloudTrail record ("AWS API Call via CloudTrail" and the other "... via
// CloudTrail" detail types) and appends the record to b if it passes the
// pre-filter. Events of other detail types are counted as ignored. The
// record's JSON aliases raw.
func (d *Decoder) DecodeEventBridge(raw []byte, b *Batch) error {
	s := scanner{b: raw}
	b.Payloads++
	if c := s.peek(); c != '{' {
		return fmt.Errorf("cloudtrail: EventBridge event: %w", topLevelError(&s, c))
	}
	var id, detailType string
	detailStart, detailEnd := -1, -1
	var detailKind byte
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			return scanString(&s, "id", &id)
		case "detail-type":
			return scanString(&s, "detail-type", &detailType)
		case "detail":
			detailKind = s.peek()
			detailStart = s.pos
			err := s.skip()
			detailEnd = s.pos
			return err
		default:
			return s.skip()
		}
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return fmt.Errorf("cloudtrail: EventBridge event: %w", err)
	}
	if detailType != "" && !strings.HasSuffix(detailType, "via CloudTrail") {
		b.Ignored++
		return nil
	}
	b.Events++
	if detailStart < 0 || detailKind == 'n' {
		b.addError(&ItemError{Source: SourceEventBridge, ID: id, Err: errors.New("missing detail")})
		return nil
	}
	if detailKind != '{' {
		b.addError(&ItemError{Source: SourceEventBridge, ID: id,
			Err: &typeError{field: "detail", want: "object", got: kindName(detailKind)}})
		return nil
	}
	detail := raw[detailStart:detailEnd]
	if !d.prefilter(detail) {
		b.Filtered++
		return nil
	}
	var r Record
	if err := parseRecord(&r, detail, false); err != nil {
		b.addError(&ItemError{Source: SourceEventBridge, ID: id, Err: err})
		return nil
	}
	r.Source = SourceEventBridge
	r.DeliveryID = id
	b.Records = append(b.Records, r)
	return nil
}

// DecodeCWLEvent decodes the Lambda event of a CloudWatch Logs subscription,
// {"awslogs":{"data":"<base64 of gzip>"}}, appending records to b.
func (d *Decoder) DecodeCWLEvent(raw []byte, b *Batch) error {
	s := scanner{b: raw}
	if c := s.peek(); c != '{' {
		b.Payloads++
		return fmt.Errorf("cloudtrail: CloudWatch Logs event: %w", topLevelError(&s, c))
	}
	var data []byte
	found := false
	err := s.object(func(key []byte) error {
		if string(key) != "awslogs" {
			return s.skip()
		}
		if c := s.peek(); c != '{' {
			if err := s.skip(); err != nil {
				return err
			}
			return &typeError{field: "awslogs", want: "object", got: kindName(c)}
		}
		return s.object(func(key []byte) error {
			if string(key) != "data" {
				return s.skip()
			}
			start, end, esc, null, err := s.stringValue("awslogs.data")
			if err != nil || null {
				return err
			}
			found = true
			data = raw[start:end]
			if esc {
				// encoders may escape '/' as "\/"; base64 has no other escapes.
				if data, err = appendUnescape(nil, data); err != nil {
					return s.fail(err.Error())
				}
			}
			return nil
		})
	})
	if err == nil {
		err = s.end()
	}
	if err == nil && !found {
		err = errors.New(`missing "awslogs.data"`)
	}
	if err != nil {
		b.Payloads++
		return fmt.Errorf("cloudtrail: CloudWatch Logs event: %w", err)
	}
	return d.DecodeCWLData(data, b)
}

// DecodeCWLData decodes base64 data (the awslogs.data string) holding a
// gzip'd CloudWatch Logs payload, appending records to b.
func (d *Decoder) DecodeCWLData(data []byte, b *Batch) error {
	f := getInflater()
	defer putInflater(f)
	gz, err := f.base64(data)
	if err != nil {
		b.Payloads++
		return err
	}
	return d.decodeCompressed(f, gz, b, SourceCWL, "")
}

// DecodeCWLCompressed decodes a gzip'd CloudWatch Logs payload, appending
// records to b.
func (d *Decoder) DecodeCWLCompressed(gz []byte, b *Batch) error {
	f := getInflater()
	defer putInflater(f)
	return d.decodeCompressed(f, gz, b, SourceCWL, "")
}

// DecodeKinesisData decodes the data of one Kinesis record (already base64
// decoded, as aws-lambda-go's events.KinesisRecord.Data is): a gzip'd
// CloudWatch Logs payload. Records are tagged with sequenceNumber. An error
// means the whole Kinesis record is unusable; report its sequence number as
// a batch item failure or send it to a dead-letter queue.
func (d *Decoder) DecodeKinesisData(sequenceNumber string, data []byte, b *Batch) error {
	f := getInflater()
	defer putInflater(f)
	return d.decodeCompressed(f, data, b, SourceKinesis, sequenceNumber)
}

// DecodeKinesisEvent decodes a Lambda Kinesis event,
// {"Records":[{"kinesis":{"data":"<base64>","sequenceNumber":...},...}]},
// whose records each carry a gzip'd CloudWatch Logs payload. A record that
// cannot be decoded becomes an ItemError carrying its sequence number; the
// other records are still decoded. The returned error reports an event
// that is not valid JSON as a whole.
func (d *Decoder) DecodeKinesisEvent(raw []byte, b *Batch) error {
	s := scanner{b: raw}
	if c := s.peek(); c != '{' {
		return fmt.Errorf("cloudtrail: Kinesis event: %w", topLevelError(&s, c))
	}
	f := getInflater()
	defer putInflater(f)
	err := s.object(func(key []byte) error {
		if string(key) != "Records" {
			return s.skip()
		}
		switch c := s.peek(); c {
		case 'n':
			return s.literal("null")
		case '[':
			return s.array(func() error { return d.kinesisRecord(&s, f, b) })
		default:
			if err := s.skip(); err != nil {
				return err
			}
			return &typeError{field: "Records", want: "array", got: kindName(c)}
		}
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return fmt.Errorf("cloudtrail: Kinesis event: %w", err)
	}
	return nil
}

// kinesisRecord decodes one element of a Kinesis event's Records array.
// Only JSON syntax errors are returned; everything else is an ItemError.
func (d *Decoder) kinesisRecord(s *scanner, f *inflater, b *Batch) error {
	if c := s.peek(); c != '{' {
		if err := s.skip(); err != nil {
			return err
		}
		b.Payloads++
		b.addError(&ItemError{Source: SourceKinesis,
			Err: &typeError{field: "Records[]", want: "object", got: kindName(c)}})
		return nil
	}
	var eventID, seq string
	var data []byte
	var itemErr error
	keep := func(err error) error {
		if errors.Is(err, ErrType) {
			if itemErr == nil {
				itemErr = err
			}
			return nil
		}
		return err
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "eventID":
			return keep(scanString(s, "eventID", &eventID))
		case "kinesis":
			c := s.peek()
			if c == 'n' {
				return s.literal("null")
			}
			if c != '{' {
				return keep(s.skipAs("kinesis", "object", c))
			}
			return s.object(func(key []byte) error {
				switch string(key) {
				case "sequenceNumber":
					return keep(scanString(s, "kinesis.sequenceNumber", &seq))
				case "data":
					start, end, esc, null, err := s.stringValue("kinesis.data")
					if err != nil || null {
						return keep(err)
					}
					data = s.b[start:end]
					if esc {
						if data, err = appendUnescape(nil, data); err != nil {
							return s.fail(err.Error())
						}
					}
					return nil
				default:
					return s.skip()
				}
			})
		default:
			return s.skip()
		}
	})
	if err != nil {
		return err
	}
	if itemErr == nil && data == nil {
		itemErr = errors.New(`missing "kinesis.data"`)
	}
	if itemErr == nil {
		var gz []byte
		if gz, itemErr = f.base64(data); itemErr == nil {
			// decodeCompressed counts the payload.
			itemErr = d.decodeCompressed(f, gz, b, SourceKinesis, seq)
		} else {
			b.Payloads++
		}
	} else {
		b.Payloads++
	}
	if itemErr != nil {
		b.addError(&ItemError{Source: SourceKinesis, ID: eventID, SequenceNumber: seq, Err: itemErr})
	}
	return nil
}

// DecodeCWLPayload decodes a decompressed CloudWatch Logs payload,
// {"messageType":...,"logEvents":[{"id":...,"timestamp":...,"message":...}]},
// appending the records that pass the pre-filter to b. A CONTROL_MESSAGE is
// counted in b.Ignored and contributes nothing else. A log event that cannot
// be decoded becomes an ItemError. The returned error reports a payload that
// is unusable as a whole; records decoded before the point of failure are
// kept in b. The records alias payload, which must not be modified while
// they are in use.
func (d *Decoder) DecodeCWLPayload(payload []byte, b *Batch) error {
	return d.decodeCWL(payload, b, SourceCWL, "")
}

func (d *Decoder) decodeCompressed(f *inflater, gz []byte, b *Batch, src Source, seq string) error {
	payload, err := f.gunzip(gz, d.maxPayload())
	if err != nil {
		b.Payloads++
		return err
	}
	return d.decodeCWL(payload, b, src, seq)
}

func (d *Decoder) decodeCWL(payload []byte, b *Batch, src Source, seq string) error {
	b.Payloads++
	s := scanner{b: payload}
	if c := s.peek(); c != '{' {
		return fmt.Errorf("cloudtrail: CloudWatch Logs payload: %w", topLevelError(&s, c))
	}
	m := b.mark()
	var msgType string
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "messageType":
			return scanString(&s, "messageType", &msgType)
		case "logEvents":
			switch c := s.peek(); c {
			case 'n':
				return s.literal("null")
			case '[':
				if msgType == "CONTROL_MESSAGE" {
					return s.skip()
				}
				return s.array(func() error { return d.logEvent(&s, b, src, seq) })
			default:
				return s.skipAs("logEvents", "array", c)
			}
		default:
			return s.skip()
		}
	})
	detach(b.Records[m.records:], payload)
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return fmt.Errorf("cloudtrail: CloudWatch Logs payload: %w", err)
	}
	switch msgType {
	case "DATA_MESSAGE", "":
		return nil
	case "CONTROL_MESSAGE":
		b.rollback(m)
		b.Ignored++
		return nil
	default:
		b.rollback(m)
		return fmt.Errorf("cloudtrail: CloudWatch Logs payload: unknown messageType %q", msgType)
	}
}

// logEvent decodes one element of logEvents. Only JSON syntax errors are
// returned; everything else is an ItemError.
func (d *Decoder) logEvent(s *scanner, b *Batch, src Source, seq string) error {
	c := s.peek()
	if c != '{' {
		if err := s.skip(); err != nil {
			return err
		}
		b.Events++
		b.addError(&ItemError{Source: src, SequenceNumber: seq,
			Err: &typeError{field: "logEvents[]", want: "object", got: kindName(c)}})
		return nil
	}
	var id, msg []byte
	var msgFlags strFlags
	var haveMsg, fused bool
	var r Record
	var itemErr error
	typeErr := func(field string, c byte) error {
		if err := s.skipAs(field, "string", c); !errors.Is(err, ErrType) {
			return err
		} else if itemErr == nil {
			itemErr = err
		}
		return nil
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			switch c := s.peek(); c {
			case '"':
				start, end, esc, err := s.str()
				id = s.b[start:end]
				if err == nil && esc {
					id, err = appendUnescape(nil, id)
				}
				return err
			case 'n':
				id = nil
				return s.literal("null")
			default:
				return typeErr("logEvents[].id", c)
			}
		case "message":
			fused = false
			switch c := s.peek(); c {
			case '"':
				// One pass: parse the record while finding the end of
				// the string; if the escaped parser gives up, find the
				// end alone and take the two-step path below.
				e := escScanner{b: s.b, pos: s.pos + 1}
				r = Record{}
				if e.record(&r) {
					haveMsg, fused, msg = true, true, s.b[s.pos+1:e.pos-1]
					s.pos = e.pos
					return nil
				}
				start, end, flags, err := s.strFlags()
				haveMsg, msg, msgFlags = true, s.b[start:end], flags
				return err
			case 'n':
				haveMsg = false
				return s.literal("null")
			default:
				return typeErr("logEvents[].message", c)
			}
		default:
			return s.skip()
		}
	})
	if err != nil {
		return err
	}
	b.Events++
	if itemErr == nil && !haveMsg {
		itemErr = errors.New(`missing "message"`)
	}
	if itemErr != nil {
		b.addError(&ItemError{Source: src, ID: string(id), SequenceNumber: seq, Err: itemErr})
		return nil
	}
	decodeAll := d != nil && d.DecodeAll
	if fused {
		// The same pre-filter decision as below, without searching the
		// message when the parsed fields already show an instance session
		// (the pre-filter would find what they were read from).
		if !decodeAll && !strings.Contains(r.UserIdentity.PrincipalID, ":i-") &&
			r.UserIdentity.SessionContext.EC2RoleDelivery == "" && !MayBeInstanceSession(msg) {
			b.Filtered++
			return nil
		}
		r.raw, r.escaped = msg, true
	} else {
		if !decodeAll && msgFlags&flagUnicode == 0 && !mayBeInstanceSession(msg) {
			b.Filtered++
			return nil
		}
		raw := make([]byte, 0, len(msg))
		if msgFlags&flagEscaped != 0 {
			raw, err = appendUnescape(raw, msg)
		} else {
			raw = append(raw, msg...)
		}
		r = Record{}
		if err == nil {
			err = parseRecord(&r, raw, true)
		}
		if err != nil {
			b.addError(&ItemError{Source: src, ID: string(id), SequenceNumber: seq, Err: err})
			return nil
		}
	}
	r.Source = src
	if len(id) > 0 {
		// id is in the payload (or a fresh unescaped copy), which is never
		// written again: alias it like the record's other strings.
		r.DeliveryID = unsafe.String(&id[0], len(id))
	}
	r.SequenceNumber = seq
	b.Records = append(b.Records, r)
	return nil
}

// scanString reads a string-or-null value into dst as a new string.
func scanString(s *scanner, field string, dst *string) error {
	start, end, esc, null, err := s.stringValue(field)
	switch {
	case err != nil:
		return err
	case null:
		*dst = ""
	case esc:
		u, err := appendUnescape(nil, s.b[start:end])
		if err != nil {
			return s.fail(err.Error())
		}
		*dst = string(u)
	default:
		*dst = string(s.b[start:end])
	}
	return nil
}

// skipAs skips a value of the wrong kind c and reports a type error for it.
func (s *scanner) skipAs(field, want string, c byte) error {
	if err := s.skip(); err != nil {
		return err
	}
	return &typeError{field: field, want: want, got: kindName(c)}
}

// topLevelError explains why the document does not start with an object.
func topLevelError(s *scanner, c byte) error {
	if c == 0 || s.skip() != nil {
		return s.fail("expected JSON object")
	}
	return &typeError{field: "top level", want: "object", got: kindName(c)}
}

// inflater holds reusable decompression state.
type inflater struct {
	zr  gzip.Reader
	br  bytes.Reader
	b64 []byte // decoded base64
}

// maxPooledBuffer bounds the buffers kept in the pool between invocations.
const maxPooledBuffer = 4 << 20

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

func getInflater() *inflater { return inflaters.Get().(*inflater) }

func putInflater(f *inflater) {
	if cap(f.b64) > maxPooledBuffer {
		f.b64 = nil
	}
	f.br.Reset(nil)
	inflaters.Put(f)
}

// base64 decodes standard base64 (padding optional, CR/LF ignored) into
// f's scratch buffer.
func (f *inflater) base64(data []byte) ([]byte, error) {
	n := base64.StdEncoding.DecodedLen(len(data)) + 3
	if cap(f.b64) < n {
		f.b64 = make([]byte, n)
	}
	buf := f.b64[:cap(f.b64)]
	enc := base64.StdEncoding
	if len(data)%4 != 0 && !bytes.ContainsAny(data, "=\r\n") {
		enc = base64.RawStdEncoding
	}
	m, err := enc.Decode(buf, data)
	if err != nil {
		return nil, fmt.Errorf("cloudtrail: base64: %w", err)
	}
	return buf[:m], nil
}

// gunzip decompresses gz into a new buffer, failing once the output exceeds
// limit bytes. The buffer is not pooled: the records decoded from it alias
// it (see escScanner), so it lives as long as they do.
func (f *inflater) gunzip(gz []byte, limit int) ([]byte, error) {
	f.br.Reset(gz)
	if err := f.zr.Reset(&f.br); err != nil {
		return nil, fmt.Errorf("cloudtrail: gunzip: %w", err)
	}
	// The gzip trailer holds the uncompressed size of the last member: use
	// it as a capacity hint, bounded by the limit and by deflate's maximum
	// compression ratio so that a forged trailer cannot force a huge
	// allocation.
	hint := 0
	if len(gz) >= 4 {
		hint = int(binary.LittleEndian.Uint32(gz[len(gz)-4:]))
	}
	hint = min(hint, limit+1, 1100*len(gz))
	buf := make([]byte, 0, max(hint, 512))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.zr.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, fmt.Errorf("cloudtrail: gunzip: output exceeds the %d-byte limit: %w", limit, ErrPayloadTooLarge)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cloudtrail: gunzip: %w", err)
		}
	}
}
