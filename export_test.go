package muster

// NewRunIDAt is newRunIDAt, for tests of the order of run ids.
var NewRunIDAt = newRunIDAt
