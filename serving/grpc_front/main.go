// taxi-grpc-front: the gRPC transport of `taxi-pipeline serve`, in Go; everything else stays in Python.
//
// Why: grpcio's per-call work in Python (the completion-queue hand-offs of grpc.aio, on both sides of a 2-core
// machine) held gRPC at 0.6-0.7x of the in-process ceiling at concurrency 8, while REST passed it (docs/SERVING.md).
// This program speaks HTTP/2 and gRPC with grpc-go and passes each call's serialized request, untouched, to the
// serve process over a Unix socket; the serve process parses, checks, batches and answers it
// (serving/grpc_bridge.py), so the answers are the Python server's, byte for byte.
//
// Frames on the socket (little-endian): a request is (payload length u32, call id u32, method u8, payload); an
// answer is (length u32, call id u32, gRPC status code u8, payload): the serialized response when the code is 0
// (OK), the status message otherwise. Calls are answered in any order.
//
// Started by the serve process (serving/grpc_bridge.py) as
//
//	taxi-grpc-front -listen HOST:PORT -bridge SOCKET -max-message-bytes N
//
// it prints "ready" once it listens and has connected, or one line "error: ..." and exits with status 2; it exits
// when the serve process closes the socket, and on SIGTERM after answering the calls in flight.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// The methods served, by gRPC's full name, and their numbers on the socket (serving/grpc_bridge.py's METHODS).
var methods = map[string]uint8{
	"/tensorflow.serving.PredictionService/Predict":          1,
	"/tensorflow.serving.PredictionService/GetModelMetadata": 2,
	"/tensorflow.serving.PredictionService/Classify":         3,
	"/tensorflow.serving.PredictionService/Regress":          4,
	"/tensorflow.serving.ModelService/GetModelStatus":        5,
}

const headerSize = 9

// passThrough replaces grpc-go's proto codec: messages stay serialized bytes in both directions.
type passThrough struct{}

func (passThrough) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (passThrough) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (passThrough) Name() string { return "proto" }

type answer struct {
	code uint8
	body []byte
}

// bridge multiplexes calls over the one socket to the serve process. Calls go out through one writer that
// flushes whatever has queued up in one write, so that calls arriving together reach the serve process together
// (and share a TensorFlow call there); answers are read through a buffer.
type bridge struct {
	conn     net.Conn
	outgoing chan []byte
	mu       sync.Mutex
	next     uint32
	waiting  map[uint32]chan answer
}

func (b *bridge) call(method uint8, payload []byte) answer {
	done := make(chan answer, 1)
	b.mu.Lock()
	b.next++
	id := b.next
	b.waiting[id] = done
	b.mu.Unlock()
	frame := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:8], id)
	frame[8] = method
	copy(frame[headerSize:], payload)
	b.outgoing <- frame
	return <-done
}

// writeCalls writes each call, and every call queued behind it, then flushes; when the serve process is gone, so
// is this one.
func (b *bridge) writeCalls() {
	out := bufio.NewWriterSize(b.conn, 1<<16)
	for frame := range b.outgoing {
		out.Write(frame)
		for queued := len(b.outgoing); queued > 0; queued-- {
			out.Write(<-b.outgoing)
		}
		if err := out.Flush(); err != nil {
			os.Exit(0)
		}
	}
}

// readAnswers hands each answer to its call; when the serve process goes away, so does this one.
func (b *bridge) readAnswers() {
	in := bufio.NewReaderSize(b.conn, 1<<16)
	header := make([]byte, headerSize)
	for {
		if _, err := io.ReadFull(in, header); err != nil {
			os.Exit(0)
		}
		body := make([]byte, binary.LittleEndian.Uint32(header[0:4]))
		if _, err := io.ReadFull(in, body); err != nil {
			os.Exit(0)
		}
		id := binary.LittleEndian.Uint32(header[4:8])
		b.mu.Lock()
		done := b.waiting[id]
		delete(b.waiting, id)
		b.mu.Unlock()
		if done != nil {
			done <- answer{header[8], body}
		}
	}
}

func (b *bridge) handle(_ interface{}, stream grpc.ServerStream) error {
	name, _ := grpc.MethodFromServerStream(stream)
	method, known := methods[name]
	if !known {
		return status.Errorf(codes.Unimplemented, "Method not found: %s", name)
	}
	var request []byte
	if err := stream.RecvMsg(&request); err != nil {
		return err
	}
	got := b.call(method, request)
	if got.code != 0 {
		return status.Error(codes.Code(got.code), string(got.body))
	}
	return stream.SendMsg(&got.body)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8500", "host:port to serve gRPC on")
	socket := flag.String("bridge", "", "the serve process's Unix socket")
	maxMessage := flag.Int("max-message-bytes", 4<<20, "largest request message taken")
	flag.Parse()
	encoding.RegisterCodec(passThrough{})
	// One thread runs the goroutines (unless GOMAXPROCS says otherwise): this program's share of the work is small,
	// and on a 2-core machine a second one spins beside the serve process's Python and TensorFlow threads. Measured
	// with bench/serving.py at concurrency 8, alternating (2026-12-04): gRPC at 0.91-1.03x of in-process against
	// 0.79-0.95x with Go's default of one per core.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		fail("cannot listen on %s for gRPC: %v", *listen, err)
	}
	conn, err := net.Dial("unix", *socket)
	if err != nil {
		fail("cannot reach the serve process at %s: %v", *socket, err)
	}
	front := &bridge{conn: conn, outgoing: make(chan []byte, 1024), waiting: map[uint32]chan answer{}}
	go front.writeCalls()
	go front.readAnswers()
	server := grpc.NewServer(grpc.MaxRecvMsgSize(*maxMessage), grpc.UnknownServiceHandler(front.handle))
	// SIGTERM (the serve process stopping) or Ctrl-C: calls in flight are answered, then the program ends.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-signals
		server.GracefulStop()
	}()
	fmt.Println("ready")
	if err := server.Serve(listener); err != nil {
		fail("%v", err)
	}
}
