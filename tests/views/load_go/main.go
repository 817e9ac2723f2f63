// Reads a view with godotenv, as a Go service would, and writes what it got.
// usage: load_go VIEW OUT.json
// OUT.json: {"read": {name: base64}, "env": {...}}: godotenv.Read(VIEW) and the variables
// godotenv.Load(VIEW) added to the environment.  Prints nothing but an error's kind.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/joho/godotenv"
)

func main() {
	view, out := os.Args[1], os.Args[2]
	read, err := godotenv.Read(view)
	if err != nil {
		fmt.Fprintln(os.Stderr, "godotenv.Read failed")
		os.Exit(1)
	}
	before := map[string]bool{}
	for _, kv := range os.Environ() {
		before[strings.SplitN(kv, "=", 2)[0]] = true
	}
	if godotenv.Load(view) != nil {
		fmt.Fprintln(os.Stderr, "godotenv.Load failed")
		os.Exit(1)
	}
	res := map[string]map[string][]byte{"read": {}, "env": {}}
	for k, v := range read {
		res["read"][k] = []byte(v)
	}
	for _, kv := range os.Environ() {
		kv2 := strings.SplitN(kv, "=", 2)
		if !before[kv2[0]] {
			res["env"][kv2[0]] = []byte(kv2[1])
		}
	}
	data, _ := json.Marshal(res)
	if os.WriteFile(out, data, 0o600) != nil {
		os.Exit(1)
	}
}
