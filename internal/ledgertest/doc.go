// Package ledgertest is the entity type of the kill -9 tests of packages
// entity and process: a ledger of unique items, whose every command adds
// its item whether the ledger has it or not, so that a command applied
// twice shows in the log and in the state.
package ledgertest
