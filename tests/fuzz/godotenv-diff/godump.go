// godump prints what godotenv 1.5.1's Parse makes of each file named on stdin (one per
// line): "FILE ok" and then " HEX(NAME)=HEX(VALUE)" per entry in byte order of names, or
// "FILE refused".  dotenv_dump.c prints the same for sfs_dotenv_parse; diff compares them.
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"sort"

	"github.com/joho/godotenv"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for sc.Scan() {
		name := sc.Text()
		b, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		m, err := godotenv.Parse(bytes.NewReader(b))
		if err != nil {
			fmt.Fprintf(out, "%s refused\n", name)
			continue
		}
		fmt.Fprintf(out, "%s ok\n", name)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(out, " %s=%s\n", hex.EncodeToString([]byte(k)),
				hex.EncodeToString([]byte(m[k])))
		}
	}
}
