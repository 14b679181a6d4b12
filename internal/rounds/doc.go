// Package rounds lets a log that settles appends in rounds wake the callers
// of a round at once (see eventlog.RoundAppender): the appends that join
// its queue between two takes share one channel, closed once every one of
// them is answered.
//
// A caller joins the current [Group] before it queues its append; a worker
// that takes appends from the queue seals the current group once it has
// taken them ([Rounds.Seal]), so later appends join a new one; whoever
// answers an append leaves its group ([Group.Leave]) after its callback
// returned. A group's channel closes when it is sealed and every member
// has left, whichever comes last.
//
// Sealing after the take, not before it, is what makes every group close:
// an append taken by a worker joined its group before it was queued, so
// that group is sealed at the latest by the seal that follows the take.
package rounds
