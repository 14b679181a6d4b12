package relay

import "errors"

// ErrInvalid reports bad arguments and options of [New] and of the sinks'
// constructors.
var ErrInvalid = errors.New("relay: invalid argument")
