// Package jsonlimit bounds what decoding a JSON document will cost before
// a decoder allocates anything: how many objects and array items it holds
// and how deeply it nests. Span ingest uses it so that a small request
// cannot make kplane allocate gigabytes ({},{},{}... decodes to a struct
// per three bytes) or overflow a recursive decoder's stack.
package jsonlimit

import (
	"bytes"
	"fmt"
)

// ElementsError means the document holds more than Limit elements.
type ElementsError struct{ Limit int }

func (e *ElementsError) Error() string { return fmt.Sprintf("more than %d elements", e.Limit) }

// DepthError means the document nests more than Limit levels.
type DepthError struct{ Limit int }

func (e *DepthError) Error() string { return fmt.Sprintf("nests more than %d levels deep", e.Limit) }

// Check counts every object, and every item of an array, as one element,
// by the document's syntax alone and without allocating. It returns an
// *ElementsError beyond maxElements and a *DepthError beyond maxDepth
// levels of nesting. Syntax errors are left to the decoder, whose messages
// name them.
func Check(data []byte, maxElements, maxDepth int) error {
	elements := 0
	element := func() error {
		elements++
		if elements > maxElements {
			return &ElementsError{maxElements}
		}
		return nil
	}
	arrays := make([]bool, 0, 16) // for each open bracket, whether it is an array
	item := false                 // the next value is an array item
	for i := 0; i < len(data); i++ {
		ch := data[i]
		switch ch {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			if len(arrays) == maxDepth {
				return &DepthError{maxDepth}
			}
			if ch == '{' || item {
				if err := element(); err != nil {
					return err
				}
			}
			arrays = append(arrays, ch == '[')
			item = ch == '['
			continue
		case '}', ']':
			if len(arrays) > 0 {
				arrays = arrays[:len(arrays)-1]
			}
		case ',':
			item = len(arrays) > 0 && arrays[len(arrays)-1]
			continue
		default:
			if item {
				if err := element(); err != nil {
					return err
				}
			}
			if ch == '"' {
				i = stringEnd(data, i+1)
			}
		}
		item = false
	}
	return nil
}

// stringEnd is the index of the quote that ends the JSON string starting
// at i (len(data) if none does): the first one not escaped by an odd
// number of backslashes.
func stringEnd(data []byte, i int) int {
	for {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return len(data)
		}
		i += q
		backslashes := 0
		for j := i - 1; j >= 0 && data[j] == '\\'; j-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return i
		}
		i++
	}
}
