package api

import (
	"errors"
	"net/http"

	"github.com/meshtalk/meshtalk/node"
)

// statusOf maps the node's errors to HTTP: the one place that does. An
// error found in none of the rows is a 500.
var statusOf = []struct {
	status int
	code   string
	errs   []error
}{
	{http.StatusNotFound, CodeNotFound, []error{node.ErrNoChat, node.ErrNoAccounts, node.ErrNotRelay, node.ErrNoFile,
		node.ErrNotStarted, node.ErrNotContact, node.ErrNoRequest, node.ErrNoMessage, node.ErrNoGroup, node.ErrNoSuchUser}},
	{http.StatusConflict, CodeNotFriends, []error{node.ErrNotFriend}},
	{http.StatusForbidden, CodeNotAdmin, []error{node.ErrNotAdmin}},
	{http.StatusForbidden, CodeNotMember, []error{node.ErrNotMember}},
	{http.StatusGone, CodeInviteExpired, []error{node.ErrInviteExpired}},
	{http.StatusGone, CodeInviteUsedUp, []error{node.ErrInviteUsedUp}},
	{http.StatusConflict, CodeNameTaken, []error{node.ErrNameTaken}},
	{http.StatusTooManyRequests, CodeQuota, []error{node.ErrQuota}},
	{http.StatusConflict, CodeNoRelay, []error{node.ErrNoRelay, node.ErrNotLoggedIn}},
	{http.StatusBadRequest, CodeBadRequest, []error{node.ErrBadRequest, node.ErrAmbiguous, node.ErrSelf, node.ErrAlreadyAsked,
		node.ErrNotImage, node.ErrBadFrame, node.ErrInvalid, node.ErrBadPeer, node.ErrBadFriendCode, node.ErrBadInvite,
		node.ErrBadName, node.ErrBadRelayInvite, node.ErrRegistrationClosed, node.ErrRelayBadRequest, node.ErrNotRegistered,
		node.ErrTooLarge}},
	{http.StatusBadGateway, CodeNoRoute, []error{node.ErrNoRoute, node.ErrUnreachable, node.ErrRefused}},
}

// writeErr answers err with its status and code.
func writeErr(w http.ResponseWriter, err error) {
	for _, row := range statusOf {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				writeError(w, row.status, row.code, err.Error())
				return
			}
		}
	}
	writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
}

// reply answers v as JSON, or err.
func reply[T any](w http.ResponseWriter, v T, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}
