package topics

// Request and reply between the parts of one side (paradigm.Request and
// paradigm.Serve): a request carries the topic its reply goes to, and the
// reply carries the request's ID.

// The kinds of request and reply envelopes.
const (
	// KindBusRequest: BusRequest, on a topic a part serves.
	KindBusRequest = "bus.request"
	// KindBusReply: BusReply, on the ReplyTo of its request.
	KindBusReply = "bus.reply"
)

// levelBus holds the replies of requests between the parts of one side:
// sedna/v1/bus/{owner}/reply/{id}. Only the runtime writes there (users and
// local apps are refused: an unknown part of the tree).
const levelBus = "bus"

// BusRequest is a request to a part that serves a topic.
type BusRequest struct {
	// ID is the requester's: the reply carries it back.
	ID string `msgpack:"id"`
	// ReplyTo is where the reply goes (BusReplyTopic).
	ReplyTo string `msgpack:"reply_to"`
	// Deadline is when the requester stops waiting (unix nanoseconds; 0:
	// none): a server drops a request past it unanswered.
	Deadline int64 `msgpack:"deadline,omitempty"`
	// Body is the request itself.
	Body []byte `msgpack:"body"`
}

// BusReply answers a BusRequest: Body, or Error when the server failed.
type BusReply struct {
	ID    string `msgpack:"id"`
	Body  []byte `msgpack:"body,omitempty"`
	Error string `msgpack:"error,omitempty"`
}

// BusReplyTopic is where the reply to request id of owner (a node's or
// the cloud's name) goes.
func BusReplyTopic(owner, id string) string { return join(Root, levelBus, owner, "reply", id) }
