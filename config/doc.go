// Package config holds the operations centre's settings and the one place
// their defaults live.
//
// Settings come from, in rising order of precedence: the defaults below, a
// JSON file (--config), command-line flags, and IOC_* environment variables
// (CONTRACT section 5: "the environment winning over the file"). Load
// reports unknown keys in the file and validates the result, so a typo is a
// start-up error, not a silently ignored setting.
//
// A Config is a plain value: copy it freely; nothing in it changes after
// Load returns.
package config
