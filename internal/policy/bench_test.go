package policy

import (
	"fmt"
	"net/url"
	"testing"
)

// benchDocument is a permission policy of n statements, as IAM returns it (URL-encoded).
func benchDocument(n int) (string, Document) {
	d := Document{Version: Version}
	for i := 0; i < n; i++ {
		d.Statement = append(d.Statement, Statement{
			Sid: fmt.Sprintf("S%d", i), Effect: "Allow",
			Action:    StringList{"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"},
			Resource:  StringList{fmt.Sprintf("arn:aws:dynamodb:us-east-1:123456789012:table/t%d", i)},
			Condition: Condition{"StringEquals": {"aws:RequestedRegion": {"us-east-1"}}},
		})
	}
	raw, err := d.JSON()
	if err != nil {
		panic(err)
	}
	return url.PathEscape(raw), d
}

// BenchmarkEqualRaw measures the per-reconcile cost of comparing an inline
// policy returned by IAM with the desired one.
func BenchmarkEqualRaw(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		raw, desired := benchDocument(n)
		b.Run(fmt.Sprintf("statements=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ok, err := EqualRaw(raw, desired)
				if err != nil || !ok {
					b.Fatal("documents differ", err)
				}
			}
		})
	}
}
