// bboltcheck: a reference reader for Cairn's interop tests, built on the real bbolt
// (Debian's golang-github-coreos-bbolt-dev, bbolt 1.3.6), so the engine's file format
// is judged by an implementation that is not ours.
//
// Build offline (no module proxy), in GOPATH mode against Debian's packaged source:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build -o bboltcheck main.go
//
// scripts/install-test-deps.sh does exactly this into target/testdeps/bin/bboltcheck.
//
// Usage:
//
//	bboltcheck check FILE   run bbolt's tx.Check(); print "ok" or one error per line (exit 1)
//	bboltcheck dump FILE    tx.Check(), then every bucket and key/value in the stable format below
//	bboltcheck stats FILE   page size, txid, high-water page, and per-bucket page statistics
//	bboltcheck gen FILE [nofreelistsync]
//	                        write a deterministic database with bbolt itself (fixtures)
//
// Dump format (one record per line, byte strings in lower-case hex, "-" for empty):
//
//	bboltcheck-dump v1
//	bucket <path>
//	key <path> <key> <value>
//
// where <path> is the hex names of the bucket and its parents joined by "/". Buckets and
// keys appear in bbolt's (byte-wise) order, a bucket line before its keys; a nested
// bucket is listed as its own "bucket" line, not as a key. Exit codes: 0 ok, 1 check
// errors, 2 usage or I/O error.
package main

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: bboltcheck check|dump|stats|gen FILE")
		os.Exit(2)
	}
	cmd, path := os.Args[1], os.Args[2]
	var code int
	switch cmd {
	case "check":
		code = runCheck(path, false)
	case "dump":
		code = runCheck(path, true)
	case "stats":
		code = runStats(path)
	case "gen":
		code = runGen(path, len(os.Args) > 3 && os.Args[3] == "nofreelistsync")
	default:
		fmt.Fprintf(os.Stderr, "bboltcheck: unknown command %q\n", cmd)
		code = 2
	}
	os.Exit(code)
}

func openRO(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	// A bounded wait for the file lock: a test that forgot to close its writer fails
	// instead of hanging.
	return bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
}

func h(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

func runCheck(path string, dump bool) int {
	db, err := openRO(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bboltcheck: open %s: %v\n", path, err)
		return 2
	}
	defer db.Close()
	code := 0
	err = db.View(func(tx *bolt.Tx) error {
		n := 0
		for cerr := range tx.Check() {
			n++
			fmt.Fprintf(os.Stderr, "check: %v\n", cerr)
		}
		if n > 0 {
			code = 1
			return nil
		}
		if !dump {
			fmt.Println("ok")
			return nil
		}
		w := os.Stdout
		fmt.Fprintln(w, "bboltcheck-dump v1")
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return dumpBucket(w, []string{h(name)}, b)
		})
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bboltcheck: %v\n", err)
		return 2
	}
	return code
}

func dumpBucket(w *os.File, path []string, b *bolt.Bucket) error {
	p := strings.Join(path, "/")
	if _, err := fmt.Fprintf(w, "bucket %s\n", p); err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				if err := dumpBucket(w, append(append([]string{}, path...), h(k)), sub); err != nil {
					return err
				}
				continue
			}
		}
		if _, err := fmt.Fprintf(w, "key %s %s %s\n", p, h(k), h(v)); err != nil {
			return err
		}
	}
	return nil
}

func runStats(path string) int {
	db, err := openRO(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bboltcheck: open %s: %v\n", path, err)
		return 2
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		fmt.Printf("pagesize %d\n", db.Info().PageSize)
		fmt.Printf("txid %d\n", tx.ID())
		fmt.Printf("size %d\n", tx.Size())
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			fmt.Printf("bucketstats %s keys=%d depth=%d branch=%d leaf=%d overflow=%d inline=%d\n",
				h(name), s.KeyN, s.Depth, s.BranchPageN, s.LeafPageN, s.LeafOverflowN, s.InlineBucketN)
			return nil
		})
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bboltcheck: %v\n", err)
		return 2
	}
	return 0
}

// runGen writes a deterministic database with bbolt: several commits, an inline bucket,
// a bucket with enough keys for branch pages, values needing overflow pages, a nested
// bucket, deletes that leave free pages, and an empty bucket.
func runGen(path string, noFreelistSync bool) int {
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelistSync})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bboltcheck: open %s: %v\n", path, err)
		return 2
	}
	defer db.Close()
	val := func(i, n int) []byte {
		v := make([]byte, n)
		for j := range v {
			v[j] = byte((i*131 + j*7) % 251)
		}
		return v
	}
	steps := []func(tx *bolt.Tx) error{
		func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("many"))
			if err != nil {
				return err
			}
			for i := 0; i < 1000; i++ {
				k := make([]byte, 8)
				binary.BigEndian.PutUint64(k, uint64(i))
				if err := b.Put(k, val(i, 40+i%60)); err != nil {
					return err
				}
			}
			small, err := tx.CreateBucket([]byte("small"))
			if err != nil {
				return err
			}
			if err := small.Put([]byte("a"), []byte("1")); err != nil {
				return err
			}
			if err := small.Put([]byte("b"), []byte{}); err != nil {
				return err
			}
			_, err = tx.CreateBucket([]byte("empty"))
			return err
		},
		func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte("big"))
			if err != nil {
				return err
			}
			for i, n := range []int{5000, 17000, 40000, 3} {
				if err := b.Put([]byte(fmt.Sprintf("v%02d", i)), val(i, n)); err != nil {
					return err
				}
			}
			p, err := tx.CreateBucket([]byte("parent"))
			if err != nil {
				return err
			}
			c, err := p.CreateBucket([]byte("child"))
			if err != nil {
				return err
			}
			if err := p.Put([]byte("x"), []byte("y")); err != nil {
				return err
			}
			return c.Put([]byte("k"), []byte("v"))
		},
		func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("many"))
			for i := 0; i < 1000; i += 3 {
				k := make([]byte, 8)
				binary.BigEndian.PutUint64(k, uint64(i))
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return tx.Bucket([]byte("big")).Delete([]byte("v01"))
		},
	}
	for _, s := range steps {
		if err := db.Update(s); err != nil {
			fmt.Fprintf(os.Stderr, "bboltcheck: gen: %v\n", err)
			return 2
		}
	}
	return 0
}
