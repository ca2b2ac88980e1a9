package raftstore

import (
	"strconv"
	"strings"
)

func lower(s string) string { return strings.ToLower(s) }

func parseUint(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }
