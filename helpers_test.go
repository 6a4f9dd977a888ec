package smpcall_test

import "github.com/smpcall/smpcall/audio"

type audioFrame = audio.Frame

func audioSinkFunc(f func([]byte)) audio.Sink {
	return audio.SinkFunc(func(fr audio.Frame) error { f(fr.Data); return nil })
}
