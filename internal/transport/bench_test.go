package transport

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkTLSSend measures TLS throughput of 64-message batches: each
// iteration sends 64 MsgApp messages (one 256-byte entry each) and waits
// until the receiving handler has them all.
func BenchmarkTLSSend(b *testing.B) {
	const batch = 64
	svc := newService(b)
	sid, rid := svc.endorse(b), svc.endorse(b)
	arrived := make(chan int, 1024)
	ln := listen(b)
	recv, err := NewTLS(TLSConfig{LocalID: rid.id, Listener: ln, Cert: rid.cert, ServiceCert: svc.cert,
		Handler: func(_ context.Context, msgs []raftpb.Message) { arrived <- len(msgs) }})
	if err != nil {
		b.Fatal(err)
	}
	defer recv.Close()
	sln := listen(b)
	send, err := NewTLS(TLSConfig{LocalID: sid.id, Listener: sln, Cert: sid.cert, ServiceCert: svc.cert,
		Handler: func(context.Context, []raftpb.Message) {}})
	if err != nil {
		b.Fatal(err)
	}
	defer send.Close()
	send.SetPeers([]Peer{{ID: rid.id, Address: ln.Addr().String()}})
	recv.SetPeers([]Peer{{ID: sid.id, Address: sln.Addr().String()}}) // or it refuses the sender

	msgs := make([]raftpb.Message, batch)
	for i := range msgs {
		msgs[i] = raftpb.Message{Type: raftpb.MsgApp, From: sid.id, To: rid.id, Term: 2, Index: uint64(i),
			Entries: []raftpb.Entry{{Term: 2, Index: uint64(i + 1), Data: make([]byte, 256)}}}
	}
	wait := func() {
		for n := 0; n < batch; {
			select {
			case k := <-arrived:
				n += k
			case <-time.After(10 * time.Second):
				b.Fatal("batch lost")
			}
		}
	}
	send.Send(msgs) // connect outside the timing
	wait()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		send.Send(msgs)
		wait()
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkTLSForward measures forwarded requests over TLS: 64 goroutines
// forward small writes (256-byte bodies) concurrently to a primary whose
// handler answers at once, as a backup relaying its clients' writes does.
func BenchmarkTLSForward(b *testing.B) {
	svc := newService(b)
	primary := startForwardNode(b, svc, svc.endorse(b), 0, func(_ context.Context, _ uint64, req *ForwardedRequest) *ForwardedResponse {
		return &ForwardedResponse{Status: http.StatusOK, Header: http.Header{"X-Coco-Txid": {"2.17"}}, Body: req.Body[:16]}
	})
	backup := startNode(b, svc, svc.endorse(b), 0)
	peers := []Peer{primary.peer(), backup.peer()}
	primary.tr.SetPeers(peers)
	backup.tr.SetPeers(peers)
	req := &ForwardedRequest{Method: http.MethodPost, Path: "/app/records", Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: make([]byte, 256)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := backup.tr.Forward(ctx, primary.id, req); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := backup.tr.Forward(ctx, primary.id, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "forwards/s")
	out, in := backup.tr.stats.get(primary.id), primary.tr.stats.get(backup.id)
	b.ReportMetric(float64(out.frames.Load())/float64(out.flushes.Load()), "req-frames/flush")
	b.ReportMetric(float64(in.frames.Load())/float64(in.flushes.Load()), "ans-frames/flush")
}
