package postgreslog

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/eventsourced-go/eventsourced/eventlog"
	"github.com/eventsourced-go/eventsourced/internal/errclass"
)

var (
	// ErrInvalidOption reports a bad [Option] value or a nil pool.
	ErrInvalidOption = errors.New("postgreslog: invalid option")
	// ErrNotSetUp reports that the tables do not exist: run [Setup] first.
	ErrNotSetUp = errors.New("postgreslog: tables not set up (run Setup)")
	// ErrSchemaVersion reports tables set up by a newer release of this
	// package than the running one.
	ErrSchemaVersion = errors.New("postgreslog: schema version not supported")
	// ErrPoolClosed reports that the caller closed the pgxpool.Pool the log
	// or store uses.
	ErrPoolClosed = errors.New("postgreslog: pool closed")
	// ErrTooLarge reports an append over [WithMaxAppendEvents] or
	// [WithMaxAppendBytes], refused before anything is sent. Errors
	// matching it also match [eventlog.ErrInvalid].
	ErrTooLarge = errors.New("postgreslog: too large")
	// ErrUnavailable reports that the server could not be reached or the
	// connection broke: the server is down, restarting or unreachable. It is
	// worth retrying later. An append that fails with it during its commit
	// may or may not have committed. Errors matching it also match
	// [eventlog.ErrUnavailable].
	ErrUnavailable = errors.New("postgreslog: database unavailable")
)

// SQLSTATE codes this package acts on.
const (
	sqlUniqueViolation     = "23505"
	sqlUndefinedTable      = "42P01"
	sqlUndefinedColumn     = "42703"
	sqlDeadlockDetected    = "40P01"
	sqlSerializationFailed = "40001"
	sqlAdminShutdown       = "57P01"
	sqlCrashShutdown       = "57P02"
	sqlCannotConnectNow    = "57P03"
)

// sqlState returns the SQLSTATE of a server error in err's chain, "" if none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// translate turns a native error into one that matches this package's or the
// contract's sentinels where one applies, keeping the native error in the
// chain for errors.As. It returns nil for nil.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, puddle.ErrClosedPool):
		return errclass.New("pool closed", err, ErrPoolClosed)
	case sqlState(err) == sqlUndefinedTable:
		return errclass.New("tables not set up (run Setup)", err, ErrNotSetUp)
	case sqlState(err) == sqlUndefinedColumn:
		// The tables of an older schema version, which Setup migrates.
		return errclass.New("tables of an older schema version (run Setup)", err, ErrNotSetUp)
	case unavailable(err):
		return errclass.New("database unavailable", err, ErrUnavailable, eventlog.ErrUnavailable)
	}
	return err
}

// unavailable reports whether err says the server is out of reach rather
// than that it refused a statement: a failed connect, a broken or closed
// connection, or a server error of class 08 (connection exception) or 57
// (the server shutting down, starting up or in crash recovery).
func unavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	switch code := sqlState(err); {
	case strings.HasPrefix(code, "08"):
		return true
	case code == sqlAdminShutdown, code == sqlCrashShutdown, code == sqlCannotConnectNow:
		return true
	}
	return false
}

// retryable reports whether a failed transaction may simply run again: the
// server aborted it to break a deadlock or a serialization conflict, and
// nothing of it was committed.
func retryable(err error) bool {
	switch sqlState(err) {
	case sqlDeadlockDetected, sqlSerializationFailed:
		return true
	}
	return false
}

// uniqueViolation reports whether err is a unique violation of the
// constraint named constraint.
func uniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlUniqueViolation && pgErr.ConstraintName == constraint
}
