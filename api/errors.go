package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/meshtalk/meshtalk/node"
)

// statusOf maps the node's errors to HTTP: the one place that does. An
// error it does not know is a 500.
func statusOf(err error) (int, string) {
	is := func(targets ...error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
	if status, code, ok := callStatusOf(err); ok {
		return status, code
	}
	switch {
	case is(node.ErrAmbiguous):
		return http.StatusConflict, CodeAmbiguous
	case is(node.ErrNoChat, node.ErrNoAccounts, node.ErrNotRelay, node.ErrNoFile, node.ErrNotStarted,
		node.ErrOwnFile, node.ErrNoSavedRelay,
		node.ErrNotContact, node.ErrNoRequest, node.ErrNoMessage, node.ErrNoGroup, node.ErrNoSuchUser):
		return http.StatusNotFound, CodeNotFound
	case is(node.ErrNotFriend, node.ErrGroupNotFriend):
		return http.StatusConflict, CodeNotFriends
	case is(node.ErrNotAdmin):
		return http.StatusForbidden, CodeNotAdmin
	case is(node.ErrNotMember):
		return http.StatusForbidden, CodeNotMember
	case is(node.ErrNotAuthor):
		return http.StatusForbidden, CodeNotAuthor
	case is(node.ErrInviteExpired):
		return http.StatusGone, CodeInviteExpired
	case is(node.ErrInviteUsedUp):
		return http.StatusGone, CodeInviteUsedUp
	case is(node.ErrInviteRevoked):
		return http.StatusGone, CodeInviteRevoked
	case is(node.ErrGroupRemoved):
		return http.StatusForbidden, CodeRemoved
	case is(node.ErrNameTaken):
		return http.StatusConflict, CodeNameTaken
	case is(node.ErrQuota):
		return http.StatusTooManyRequests, CodeQuota
	case is(node.ErrNoRelay, node.ErrNotLoggedIn):
		return http.StatusConflict, CodeNoRelay
	case is(node.ErrBadRequest, node.ErrGroupBadFrame, node.ErrSelf, node.ErrAlreadyAsked, node.ErrNotImage,
		node.ErrBadFrame, node.ErrInvalid, node.ErrBadPeer, node.ErrBadFriendCode, node.ErrBadInvite,
		node.ErrBadName, node.ErrBadRelayInvite, node.ErrRegistrationClosed, node.ErrRelayBadRequest,
		node.ErrNotRegistered, node.ErrTooLarge, node.ErrNotEditable, node.ErrDeleted):
		return http.StatusBadRequest, CodeBadRequest
	case is(node.ErrNoRoute, node.ErrUnreachable, node.ErrRefused, node.ErrGroupRefused):
		return http.StatusBadGateway, CodeNoRoute
	}
	return http.StatusInternalServerError, CodeInternal
}

// writeErr answers err with its status and code.
func writeErr(w http.ResponseWriter, err error) {
	status, code := statusOf(err)
	msg := err.Error()
	if status < http.StatusInternalServerError {
		msg = forUser(msg)
	}
	body := errorBody{Error: Error{Code: code, Message: msg}}
	if amb, ok := errors.AsType[*node.AmbiguousError](err); ok {
		body.Error.Candidates = amb.Candidates
	}
	writeJSON(w, status, body)
}

// reply answers v as JSON, or err.
func reply[T any](w http.ResponseWriter, v T, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// layers are the packages an error passes through on its way to the API,
// whose names prefix it and say nothing to a person.
var layers = map[string]bool{"api": true, "node": true, "chat": true, "history": true, "group": true}

// forUser is the message of a refused request as a person reads it: with
// the layers' names taken out, "chat: avatar: history: invalid image: not
// a PNG" reads "avatar: invalid image: not a PNG". (A 500 keeps them: it
// is a bug to report, and they say where.)
func forUser(msg string) string {
	parts := strings.Split(msg, ": ")
	kept := parts[:0]
	for i, p := range parts {
		if layers[p] && i < len(parts)-1 {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ": ")
}
