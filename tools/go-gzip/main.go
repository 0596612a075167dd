// Command go-gzip gzips stdin to stdout with a chosen Go producer, to make the test fixtures
// of airlock's goflate module (issue 6), and times that producer for its benchmark.
//
//	go-gzip gzip LEVEL          Go's compress/gzip, LEVEL 1-9 or -1 (default)
//	go-gzip gzip LEVEL FLUSH    as gzip, calling Flush after every FLUSH bytes of input
//	go-gzip pgzip LEVEL BLOCK   klauspost/pgzip, LEVEL as above, BLOCK bytes per block (0: default)
//	go-gzip time ROUNDS ARGS... compresses stdin ROUNDS times with the producer ARGS names (as
//	                            above), discarding the output; prints the process CPU seconds
//	                            per round (user + system) and the compressed size
//
// Build without modules: GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-gzip .
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/klauspost/pgzip"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-gzip:", err)
	os.Exit(2)
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "time" {
		if len(args) < 2 {
			fail(fmt.Errorf("usage: go-gzip time ROUNDS gzip LEVEL [FLUSH] | pgzip LEVEL BLOCK"))
		}
		rounds, err := strconv.Atoi(args[1])
		if err != nil || rounds < 1 {
			fail(fmt.Errorf("bad ROUNDS %q", args[1]))
		}
		if err := timeProducer(rounds, args[2:]); err != nil {
			fail(err)
		}
		return
	}
	if err := compress(os.Stdout, os.Stdin, args); err != nil {
		fail(err)
	}
}

// compress writes src gzipped by the producer `args` names to dst.
func compress(dst io.Writer, src io.Reader, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: go-gzip gzip LEVEL [FLUSH] | pgzip LEVEL BLOCK")
	}
	level, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	extra := 0
	if len(args) > 2 {
		if extra, err = strconv.Atoi(args[2]); err != nil {
			return err
		}
	}
	switch args[0] {
	case "gzip":
		gw, err := gzip.NewWriterLevel(dst, level)
		if err != nil {
			return err
		}
		if extra > 0 {
			err = copyFlushing(gw, src, extra)
		} else {
			_, err = io.Copy(gw, src)
		}
		if err != nil {
			return err
		}
		return gw.Close()
	case "pgzip":
		pw, err := pgzip.NewWriterLevel(dst, level)
		if err != nil {
			return err
		}
		if extra > 0 {
			if err := pw.SetConcurrency(extra, 4); err != nil {
				return err
			}
		}
		if _, err := io.Copy(pw, src); err != nil {
			return err
		}
		return pw.Close()
	default:
		return fmt.Errorf("unknown producer %q", args[0])
	}
}

// copyFlushing copies src to w, flushing after every `every` bytes.
func copyFlushing(w *gzip.Writer, src io.Reader, every int) error {
	buf := make([]byte, every)
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// counter is an io.Writer that only counts.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail(err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// timeProducer compresses stdin `rounds` times in memory with the producer `args` names and
// prints the CPU seconds per round and the compressed size.
func timeProducer(rounds int, args []string) error {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	// One untimed round first: it checks the arguments and warms up.
	var out counter
	if err := compress(&out, bytes.NewReader(input), args); err != nil {
		return err
	}
	start := cpuSeconds()
	for i := 0; i < rounds; i++ {
		out = counter{}
		if err := compress(&out, bytes.NewReader(input), args); err != nil {
			return err
		}
	}
	fmt.Printf("%.6f %d\n", (cpuSeconds()-start)/float64(rounds), out.n)
	return nil
}
