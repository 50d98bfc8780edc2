package sqldb

import "errors"

// ErrSchemaTooNew means the database was migrated by a newer kplane than
// this binary: running would risk writing rows the newer schema does not
// expect, so Migrate refuses and the operator must upgrade the binary.
var ErrSchemaTooNew = errors.New("database schema is newer than this kplane binary")

// ErrBadMigration means an embedded migration file is malformed (name,
// numbering). It is a build-time mistake that tests catch.
var ErrBadMigration = errors.New("bad migration")
