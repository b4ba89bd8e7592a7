package cloudtrail

import "errors"

// FloorCWLEvent is what every CloudWatch Logs event costs before any record
// is read, done with the decoder's own code: the Lambda event's JSON (the
// awslogs.data string), base64, gunzip, and the payload's envelope with
// every logEvents message scanned as a JSON string (not unescaped, not
// parsed). It returns the number of log events. The detector's decode-floor
// benchmark compares the product with it.
func FloorCWLEvent(raw []byte) (int, error) {
	s := scanner{b: raw}
	var data []byte
	err := s.object(func(key []byte) error {
		if string(key) != "awslogs" {
			return s.skip()
		}
		return s.object(func(key []byte) error {
			if string(key) != "data" {
				return s.skip()
			}
			start, end, _, _, err := s.stringValue("awslogs.data")
			data = raw[start:end]
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	f := getInflater()
	defer putInflater(f)
	gz, err := f.base64(data)
	if err != nil {
		return 0, err
	}
	payload, err := f.gunzip(gz, DefaultMaxPayloadBytes)
	if err != nil {
		return 0, err
	}
	p := scanner{b: payload}
	events := 0
	err = p.object(func(key []byte) error {
		if string(key) != "logEvents" {
			return p.skip()
		}
		return p.array(func() error {
			events++
			return p.object(func(key []byte) error {
				if string(key) != "message" {
					return p.skip()
				}
				_, _, _, err := p.strFlags()
				return err
			})
		})
	})
	if err == nil && events == 0 {
		err = errors.New("no log events")
	}
	return events, err
}
