// Package rounds lets a log that settles appends in rounds wake the callers
// of a round at once (see eventlog.RoundAppender): the appends of a round
// share a [Group], whose channel closes once every one of them is
// answered.
//
// The log adds each append to its group ([Group.Join]) before the append
// can be answered, seals the group ([Group.Seal]) once no more appends will
// join it, and leaves it ([Group.Leave], [Group.LeaveN], [Leaves]) for
// each append answered, after the append's callback returned. The channel
// closes when the group is sealed and every member has left, whichever
// comes last. Join and Seal must not run concurrently (the log serializes
// them, for example under its queue's lock); Leave may run anywhere.
package rounds
