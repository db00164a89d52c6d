package access_test

import (
	"errors"
	"fmt"

	"github.com/sedna-go/sedna/broker/access"
	"github.com/sedna-go/sedna/topics"
)

// Authorize decides alone, for every path into either broker: a node's
// bridge on the cloud broker writes its own status and not another
// node's; a local app on its node's broker does not speak for the bridge.
func ExampleAuthorize() {
	bridge := access.NodePrincipal("edge-1")
	for _, node := range []string{"edge-1", "edge-2"} {
		err := access.Authorize(access.RoleCloud, "", bridge, access.PathPublish, topics.NodeStatusTopic(node))
		fmt.Println(node, err == nil)
	}
	err := access.Authorize(access.RoleEdge, "edge-1", access.LocalAppPrincipal, access.PathRetain, topics.NodeStatusTopic("edge-1"))
	fmt.Println(errors.Is(err, access.ErrNotAuthorized))
	// Output:
	// edge-1 true
	// edge-2 false
	// true
}

// A credentials file keeps bcrypt hashes only; a node's user acts for the
// node of its name unless it says another.
func ExampleCredentials() {
	hash, _ := access.HashPassword("s3cret")
	c, err := access.NewCredentials(access.User{Username: "edge-1", PasswordHash: hash, Role: access.UserNode})
	if err != nil {
		fmt.Println(err)
		return
	}
	u, ok := c.Check([]byte("edge-1"), []byte("s3cret"))
	fmt.Println(ok, u.Role, u.Node)
	_, ok = c.Check([]byte("edge-1"), []byte("guess"))
	fmt.Println(ok)
	// Output:
	// true node edge-1
	// false
}
