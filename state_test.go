package smpcall

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// allowed lists every allowed transition of both machines (protocol §4.2,
// §4.6); every (state, op) pair not listed must be refused.
var allowed = map[CallState]map[callOp]CallState{
	StateNone: {
		opInvite: StateInvitationSent, opRecvInvitation: StateInvitationReceived,
	},
	StateEnded: {
		opInvite: StateInvitationSent, opRecvInvitation: StateInvitationReceived,
	},
	// outgoing
	StateInvitationSent: {
		opRecvOffer: StateOfferReceived, opEnd: StateEnded, opRecvEnded: StateEnded,
		opStatusConnected: StateInvitationSent, opStatusOther: StateInvitationSent,
		opRecvInvitation: StateInvitationReceived,
	},
	StateOfferReceived: {
		opAnswer: StateNegotiated, opRecvExtra: StateOfferReceived, opEnd: StateEnded, opRecvEnded: StateEnded,
		opStatusConnected: StateOfferReceived, opStatusOther: StateOfferReceived,
		opRecvInvitation: StateInvitationReceived,
	},
	StateNegotiated: {
		opExtra: StateNegotiated, opRecvExtra: StateNegotiated, opStatusConnected: StateConnected,
		opStatusOther: StateNegotiated, opEnd: StateEnded, opRecvEnded: StateEnded,
		opRecvInvitation: StateInvitationReceived,
	},
	// incoming
	StateInvitationReceived: {
		opAccept: StateInvitationAccepted, opOffer: StateOfferSent, opReject: StateEnded,
		opEnd: StateEnded, opRecvEnded: StateEnded,
		opStatusConnected: StateInvitationReceived, opStatusOther: StateInvitationReceived,
		opRecvInvitation: StateInvitationReceived,
	},
	StateInvitationAccepted: {
		opOffer: StateOfferSent, opReject: StateEnded, opEnd: StateEnded, opRecvEnded: StateEnded,
		opStatusConnected: StateInvitationAccepted, opStatusOther: StateInvitationAccepted,
		opRecvInvitation: StateInvitationReceived,
	},
	StateOfferSent: {
		opRecvAnswer: StateAnswerReceived, opExtra: StateOfferSent, opEnd: StateEnded, opRecvEnded: StateEnded,
		opStatusConnected: StateOfferSent, opStatusOther: StateOfferSent,
		opRecvInvitation: StateInvitationReceived,
	},
	StateAnswerReceived: {
		opExtra: StateAnswerReceived, opRecvExtra: StateAnswerReceived, opStatusConnected: StateConnected,
		opStatusOther: StateAnswerReceived, opEnd: StateEnded, opRecvEnded: StateEnded,
		opRecvInvitation: StateInvitationReceived,
	},
	StateConnected: {
		opExtra: StateConnected, opRecvExtra: StateConnected, opStatusConnected: StateConnected,
		opStatusOther: StateConnected, opEnd: StateEnded, opRecvEnded: StateEnded,
		opRecvInvitation: StateInvitationReceived,
	},
}

func TestStateMachineEveryTransition(t *testing.T) {
	allowedCount, refusedCount := 0, 0
	for s := StateNone; s <= StateEnded; s++ {
		for op := opInvite; op <= opRecvEnded; op++ {
			t.Run(fmt.Sprintf("%s/%s", s, op), func(t *testing.T) {
				want, ok := allowed[s][op]
				got, gotOK := next(s, op)
				require.Equal(t, ok, gotOK, "allowed?")
				if ok {
					allowedCount++
					require.Equal(t, want, got)
				} else {
					refusedCount++
				}
			})
		}
	}
	require.Equal(t, 10*14, allowedCount+refusedCount)
	require.Equal(t, 60, allowedCount) // the rows above
}

func TestStateNames(t *testing.T) {
	require.Equal(t, "invitationSent", StateInvitationSent.String())
	require.Equal(t, "answerReceived", StateAnswerReceived.String())
	require.Equal(t, "CallState(42)", CallState(42).String())
	for s := StateNone; s <= StateEnded; s++ {
		require.False(t, s.Outgoing() && s.Incoming(), s.String())
		require.Equal(t, s != StateNone && s != StateEnded, s.Active())
	}
}
