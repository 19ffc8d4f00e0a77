package testenv

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// PageAccountDetails cuts one page out of a GetAccountAuthorizationDetails
// response that holds every role (moto ignores MaxItems): the roles
// [offset, offset+size) of RoleDetailList, with IsTruncated and Marker (the
// next offset) as IAM sets them. The rest of the document is kept byte for
// byte.
func PageAccountDetails(body []byte, offset, size int) ([]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var (
		depth, listDepth     int
		listStart, listEnd   int64 = -1, -1
		memberStart          int64
		members              [][2]int64
		truncStart, truncEnd int64 = -1, -1
	)
	for {
		before := dec.InputOffset()
		tok, err := dec.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case t.Name.Local == "RoleDetailList" && listDepth == 0:
				listDepth, listStart = depth, dec.InputOffset()
			case listDepth > 0 && depth == listDepth+1 && t.Name.Local == "member":
				memberStart = before
			case t.Name.Local == "IsTruncated" && truncStart < 0:
				truncStart = before
			}
		case xml.EndElement:
			switch {
			case listDepth > 0 && depth == listDepth+1 && t.Name.Local == "member":
				members = append(members, [2]int64{memberStart, dec.InputOffset()})
			case listDepth > 0 && depth == listDepth && t.Name.Local == "RoleDetailList":
				listEnd, listDepth = before, -1
			case t.Name.Local == "IsTruncated" && truncEnd < 0:
				truncEnd = dec.InputOffset()
			}
			depth--
		}
	}
	if listStart < 0 || listEnd < listStart || truncStart < 0 || truncEnd < truncStart {
		return nil, fmt.Errorf("not a GetAccountAuthorizationDetails response with RoleDetailList and IsTruncated")
	}
	end := min(offset+size, len(members))
	offset = min(offset, end)
	truncated := "<IsTruncated>false</IsTruncated>"
	if end < len(members) {
		truncated = "<IsTruncated>true</IsTruncated><Marker>" + strconv.Itoa(end) + "</Marker>"
	}
	// Splice in document order: IsTruncated may come before or after the list.
	type cut struct {
		from, to int64
		with     []byte
	}
	var page []byte
	for _, m := range members[offset:end] {
		page = append(page, body[m[0]:m[1]]...)
	}
	cuts := []cut{{listStart, listEnd, page}, {truncStart, truncEnd, []byte(truncated)}}
	if cuts[1].from < cuts[0].from {
		cuts[0], cuts[1] = cuts[1], cuts[0]
	}
	var out bytes.Buffer
	pos := int64(0)
	for _, c := range cuts {
		out.Write(body[pos:c.from])
		out.Write(c.with)
		pos = c.to
	}
	out.Write(body[pos:])
	return out.Bytes(), nil
}
