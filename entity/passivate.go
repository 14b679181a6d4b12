package entity

// Passivate stops the live entity id if it is idle, as idle passivation
// would: the next command activates it again and it recovers from the log.
// It reports false only if the entity is busy (commands waiting or running);
// if it is not live, there is nothing to do and it reports true. Package
// cluster uses it to stop entities whose ownership moved to another member.
func (k *Kind[S, E]) Passivate(id string) bool {
	in, ok := k.live.Load(id)
	if !ok {
		return true
	}
	return k.passivate(in)
}
