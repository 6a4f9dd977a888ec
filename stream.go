package smpcall

// stream is one of the four media streams of a call, by its m-line (and
// transceiver mid) position in a current SimpleX session (protocol §6.4).
// Everything per stream (tracks, counters, send state) is an array indexed
// by it.
type stream uint8

// The four streams in mid order.
const (
	streamMic         stream = 0 // mid "0", audio
	streamCamera      stream = 1 // mid "1", video (present even in audio calls)
	streamScreenAudio stream = 2 // mid "2", audio
	streamScreenVideo stream = 3 // mid "3", video
	numStreams               = 4
)

// streams lists the four streams in order, for range loops.
var streams = [numStreams]stream{streamMic, streamCamera, streamScreenAudio, streamScreenVideo}

func (s stream) video() bool { return s == streamCamera || s == streamScreenVideo }

// source is the stream's public name.
func (s stream) source() CallMediaSource { return MediaSources[s] }

func (s stream) String() string { return string(s.source()) }

// streamOf returns the stream of a public source name.
func streamOf(src CallMediaSource) (stream, bool) {
	for _, s := range streams {
		if s.source() == src {
			return s, true
		}
	}
	return 0, false
}

// streamOfMid returns the stream of a current client's mid ("0"–"3").
// Older clients use other mids (protocol §6.4); see attachAnswerTracks.
func streamOfMid(mid string) (stream, bool) {
	if len(mid) == 1 && mid[0] >= '0' && mid[0] <= '3' {
		return stream(mid[0] - '0'), true
	}
	return 0, false
}

// streamSet is a set of streams, bit s for stream s.
type streamSet uint8

func (m streamSet) has(s stream) bool { return m&(1<<s) != 0 }

func (m *streamSet) add(s stream) { *m |= 1 << s }
