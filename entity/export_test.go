package entity

// Queued returns how many commands wait in the queue of entity id of k, 0
// if it is not live: tests wait for it instead of sleeping.
func Queued[S, E any](k *Kind[S, E], id string) int {
	in, ok := k.live.Load(id)
	if !ok {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.queue)
}
