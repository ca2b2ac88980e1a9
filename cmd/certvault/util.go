package main

import "encoding/json"

// remarshal converts a decoded JSON value into a typed struct.
func remarshal(in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, out)
}
