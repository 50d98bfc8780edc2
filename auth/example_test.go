package auth_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/sqldb"
)

// A CI system gets its own user and token; the token acts with the user's
// role.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "kplane-auth-example")
	defer os.RemoveAll(dir)
	db, _ := sqldb.Open(ctx, filepath.Join(dir, "kplane.db"), nil)
	defer db.Close()
	_ = sqldb.Migrate(ctx, db)

	svc, _ := auth.New(db, auth.Config{})
	_ = svc.CreateUser(ctx, "jenkins", "a long password", auth.Developer)
	token, _ := svc.CreateToken(ctx, "jenkins", "build reports", 0)

	id, err := svc.Authenticate(ctx, token)
	fmt.Println(id.User, id.Role, err)
	fmt.Println("may scale:", id.Role.Allows(auth.Developer))
	fmt.Println("may promote to prod:", id.Role.Allows(auth.Releaser))
	// Output:
	// jenkins developer <nil>
	// may scale: true
	// may promote to prod: false
}
