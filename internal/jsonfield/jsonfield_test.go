package jsonfield

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeAndPaths(t *testing.T) {
	o, err := Decode([]byte(` {"a":1,"n":null,"o":{"b":"x"}} `))
	require.NoError(t, err)
	var a int
	require.NoError(t, o.Required("a", &a))
	require.Equal(t, 1, a)
	require.ErrorIs(t, o.Required("n", &a), ErrMissing)
	require.ErrorIs(t, o.Required("zz", &a), ErrMissing)
	ok, err := o.Optional("n", &a)
	require.NoError(t, err)
	require.False(t, ok)
	require.True(t, o.Has("o"))
	require.False(t, o.Has("n"))
	var s string
	err = o.Required("a", &s)
	require.EqualError(t, err, "a: unexpected JSON number")

	inner := Wrap("b", errors.New("bad"))
	outer := Wrap("o", inner)
	require.EqualError(t, Wrap("params", outer), "params.o.b: bad")
	var fe *Error
	require.ErrorAs(t, outer, &fe)
	require.Equal(t, "o.b", fe.Path)
	require.Nil(t, Wrap("x", nil))

	for in, want := range map[string]string{"": "nothing", "null": "null", "[1]": "an array", `"s"`: "a string", "true": "a boolean", "-1": "a number", "?": "invalid JSON"} {
		_, err := Decode([]byte(in))
		require.ErrorContains(t, err, want, in)
	}
	_, err = Decode([]byte(`{"a":`))
	require.ErrorContains(t, err, "invalid JSON")
}

func TestMarshalDoesNotEscapeHTML(t *testing.T) {
	b, err := Marshal(map[string]string{"k": "<a&b>"})
	require.NoError(t, err)
	require.Equal(t, `{"k":"<a&b>"}`, string(b))
	require.Equal(t, `"abc"`, Quote("abc"))
	long := strings.Repeat("x", 100)
	require.Equal(t, `"`+long[:40]+`…"`, Quote(long))
}
