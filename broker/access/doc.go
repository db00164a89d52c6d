// Package access decides who may connect to a broker and what each client
// may do there:
//
//   - Credentials: the users of a credentials file (bcrypt hashes only,
//     HashPassword makes one) and their UserRole;
//   - Principal, Path and Authorize: the one authorization point of both
//     brokers. Every way a message enters a broker (a publish, a retained
//     message, a will, a message inside a bridge frame, a publish the
//     process makes on someone's behalf) and every subscription and
//     delivery is decided by Authorize alone, by the rules of
//     docs/TOPICS.md and the model of docs/SECURITY.md: deny by default;
//   - AuthHook and AuthzHook, the mochi hooks that apply them to clients:
//     authentication at CONNECT (with the will and the client ID), and
//     authorization of each publish, subscription and delivery, every
//     refusal logged and counted.
//
// The broker (package broker) installs both hooks first; the bridge's
// ingress (package cloudlink) asks Authorize about each message of a
// frame.
package access
