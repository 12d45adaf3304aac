package node

import (
	"errors"

	"github.com/meshtalk/meshtalk/chat"
	"github.com/meshtalk/meshtalk/discovery"
	"github.com/meshtalk/meshtalk/group"
	"github.com/meshtalk/meshtalk/relay"
	"github.com/meshtalk/meshtalk/transfer"
)

// The errors of the use-case methods (messages.go, files.go, friends.go,
// groups.go, accounts.go, relayops.go, status.go). A caller tells them
// apart with errors.Is; most are the protocol packages' own sentinels,
// named here so that a caller (the API) needs node alone.
var (
	// ErrNoChat: the node is a relay, which has no contacts, messages,
	// files or groups.
	ErrNoChat = errors.New("node: a relay has no contacts or messages")
	// ErrNoAccounts: the node is a relay, which has no accounts on relays.
	ErrNoAccounts = errors.New("node: a relay has no accounts of its own; run this against a personal node")
	// ErrNotRelay: an operator's request to a personal node.
	ErrNotRelay = errors.New("node: this is a personal node; run operator commands against a relay (meshtalk relay ... --home RELAY_HOME)")
	// ErrNoFile: no file was offered to this node with that ID.
	ErrNoFile = errors.New("node: no file offered with that ID (see `meshtalk file list`)")
	// ErrOwnFile: a download of a file this node sent.
	ErrOwnFile = errors.New("node: this node sent that file; it has it already")
	// ErrNoSavedRelay: no relay saved in config.toml is the one named.
	ErrNoSavedRelay = errors.New("node: no such relay in config.toml (see `meshtalk relay list`)")
	// ErrBadRequest is wrapped by the errors of a request that cannot be
	// right as it is (a missing field, a file that cannot be read, ...).
	ErrBadRequest = errors.New("node: bad request")
	// ErrNoRoute is wrapped when a peer or a relay could not be reached.
	ErrNoRoute = discovery.ErrNoRoute

	// Naming peers.
	ErrBadPeer       = discovery.ErrBadPeer
	ErrBadFriendCode = discovery.ErrBadFriendCode

	// Contacts and messages.
	ErrNotContact = chat.ErrNotContact
	ErrNoRequest  = chat.ErrNoRequest
	ErrNoMessage  = chat.ErrNoMessage
	ErrNotFriend  = chat.ErrNotFriend
	// ErrAmbiguous: a name or prefix that fits more than one thing; the
	// error is an *AmbiguousError that lists them.
	ErrAmbiguous    = errors.New("node: ambiguous reference")
	ErrSelf         = chat.ErrSelf
	ErrAlreadyAsked = chat.ErrAlreadyAsked
	ErrNotImage     = chat.ErrNotImage
	ErrBadFrame     = chat.ErrBadFrame
	ErrInvalid      = chat.ErrInvalid
	// Edits and deletes.
	ErrNotAuthor   = chat.ErrNotAuthor
	ErrNotEditable = chat.ErrNotEditable
	ErrDeleted     = chat.ErrDeleted

	// Groups.
	ErrNoGroup       = group.ErrNoGroup
	ErrNotAdmin      = group.ErrNotAdmin
	ErrNotMember     = group.ErrNotMember
	ErrInviteExpired = group.ErrInviteExpired
	ErrInviteUsedUp  = group.ErrInviteUsedUp
	ErrInviteRevoked = group.ErrInviteRevoked
	ErrGroupRemoved  = group.ErrRemoved
	ErrBadInvite     = group.ErrBadInvite
	ErrUnreachable   = group.ErrUnreachable
	// The group service's own errors of the kinds chat has too: the API
	// answers them alike.
	ErrGroupNotFriend = group.ErrNotFriend
	ErrGroupBadFrame  = group.ErrBadFrame
	ErrGroupRefused   = group.ErrRefused
	ErrRefused        = chat.ErrRefused

	// Files.
	ErrNotStarted = transfer.ErrNotStarted

	// Accounts on relays.
	ErrNoSuchUser         = relay.ErrNotFound
	ErrNameTaken          = relay.ErrNameTaken
	ErrQuota              = relay.ErrQuota
	ErrBadName            = relay.ErrBadName
	ErrBadRelayInvite     = relay.ErrBadInvite
	ErrRegistrationClosed = relay.ErrClosed
	ErrRelayBadRequest    = relay.ErrBadRequest
	ErrNotRegistered      = relay.ErrNotRegistered
	ErrTooLarge           = relay.ErrTooLarge
	ErrNoRelay            = relay.ErrNoRelay
	ErrNotLoggedIn        = relay.ErrNotLoggedIn
)

// kindError files err under kind (errors.Is finds both) and reads as err
// alone.
type kindError struct{ kind, err error }

func (e kindError) Error() string   { return e.err.Error() }
func (e kindError) Unwrap() []error { return []error{e.kind, e.err} }

// badRequest files err under ErrBadRequest.
func badRequest(err error) error { return kindError{ErrBadRequest, err} }

// relayFailure files an error of a relay's answer that names no cause a
// caller acts on (the relay went away, the stream broke) under ErrNoRoute.
func relayFailure(err error) error {
	if err == nil {
		return nil
	}
	// The accounts' errors above, by their names here.
	for _, known := range []error{ErrNoSuchUser, ErrNameTaken, ErrQuota, ErrBadName, ErrBadRelayInvite,
		ErrRegistrationClosed, ErrRelayBadRequest, ErrNotRegistered, ErrTooLarge, ErrNoRelay, ErrNotLoggedIn,
		ErrBadPeer, ErrBadRequest, ErrNoAccounts} {
		if errors.Is(err, known) {
			return err
		}
	}
	return kindError{ErrNoRoute, err}
}
