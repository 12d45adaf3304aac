package main

import (
	"bufio"
	be "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// labRouterEnv marks the test binary started as the port-mapping
// service of a lab router (TestHelperLabRouter), not as a test run.
const labRouterEnv = "MESHTALK_TEST_LAB_ROUTER"

// TestHelperLabRouter is not a test: it is the port-mapping service of a
// lab router, started by startLabRouter as a subprocess of the test
// binary inside the router's namespace. Debian's miniupnpd refuses the
// documentation ranges as its external address, so the lab brings its
// own: a UPnP IGD (SSDP on the LAN, the device description and the
// WANIPConnection:1 control over HTTP) and a NAT-PMP responder (RFC 6886,
// UDP 5351). Both tell the external (WAN) address and, for each mapping,
// install the real DNAT rule with iptables, so what the node's unmodified
// go-libp2p client asks for is what the kernel then forwards.
//
// go-libp2p v0.51 finds its NAT-PMP gateway with go-netroute's
// Route(0.0.0.0), which go-netroute v0.4.0 refuses on Linux ("destination
// IP must be specified"): there the nodes map their ports over UPnP, and
// the NAT-PMP responder waits for the day that is fixed.
func TestHelperLabRouter(t *testing.T) {
	spec := os.Getenv(labRouterEnv)
	if spec == "" {
		t.Skip("the port-mapping router of TestNATMatrix, run as its subprocess")
	}
	// spec: LAN-address,external-address,WAN-interface,LAN-interface
	f := strings.Split(spec, ",")
	if len(f) != 4 {
		t.Fatalf("%s=%q, want LAN,EXTERNAL,WAN,LANIF", labRouterEnv, spec)
	}
	r := &labRouter{lan: net.ParseIP(f[0]).To4(), external: net.ParseIP(f[1]).To4(), wan: f[2], start: time.Now(), rules: map[string][]string{}}
	defer r.removeAll()
	pmp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: r.lan, Port: 5351})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := r.serveUPnP(f[3])
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	fmt.Println("router ready")
	// The parent closes stdin (or dies): stop, and take the rules away.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		pmp.Close()
	}()
	r.serveNATPMP(pmp)
}

// labRouter is the service's state: the DNAT rules it installed, by
// protocol and external port.
type labRouter struct {
	lan, external net.IP
	wan           string
	start         time.Time

	mu    sync.Mutex
	rules map[string][]string
}

// NAT-PMP opcodes and result codes (RFC 6886 3.2, 3.3, 3.5).
const (
	pmpOpExternal  = 0
	pmpOpMapUDP    = 1
	pmpOpMapTCP    = 2
	pmpOpReply     = 128
	pmpResultOK    = 0
	pmpResultNetFa = 3
)

func (r *labRouter) serveNATPMP(conn *net.UDPConn) {
	buf := make([]byte, 1100) // RFC 6886: requests are small; read what comes
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n < 2 || buf[0] != 0 {
			continue
		}
		epoch := uint32(time.Since(r.start).Seconds())
		switch op := buf[1]; {
		case op == pmpOpExternal && n == 2:
			resp := make([]byte, 12)
			resp[1] = pmpOpReply + op
			be.BigEndian.PutUint32(resp[4:], epoch)
			copy(resp[8:], r.external)
			conn.WriteToUDP(resp, from)
		case (op == pmpOpMapUDP || op == pmpOpMapTCP) && n == 12:
			proto := "udp"
			if op == pmpOpMapTCP {
				proto = "tcp"
			}
			internal := be.BigEndian.Uint16(buf[4:])
			ext := be.BigEndian.Uint16(buf[6:])
			lifetime := be.BigEndian.Uint32(buf[8:])
			if ext == 0 {
				ext = internal
			}
			result := uint16(pmpResultOK)
			if err := r.mapPort(proto, from.IP, internal, ext, lifetime); err != nil {
				fmt.Fprintln(os.Stderr, "NAT-PMP:", err)
				result = pmpResultNetFa
			}
			if lifetime == 0 {
				ext = 0
			}
			resp := make([]byte, 16)
			resp[1] = pmpOpReply + op
			be.BigEndian.PutUint16(resp[2:], result)
			be.BigEndian.PutUint32(resp[4:], epoch)
			be.BigEndian.PutUint16(resp[8:], internal)
			be.BigEndian.PutUint16(resp[10:], ext)
			be.BigEndian.PutUint32(resp[12:], lifetime)
			conn.WriteToUDP(resp, from)
		}
	}
}

// mapPort installs (lifetime > 0) or removes (0) the DNAT rule that
// forwards the external port to the client's internal one. Lifetimes are
// not timed out: the lab lives shorter than any of them.
func (r *labRouter) mapPort(proto string, client net.IP, internal, ext uint16, lifetime uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := proto + "/" + strconv.Itoa(int(ext))
	rule := []string{"PREROUTING", "-i", r.wan, "-p", proto, "--dport", strconv.Itoa(int(ext)),
		"-j", "DNAT", "--to-destination", net.JoinHostPort(client.String(), strconv.Itoa(int(internal)))}
	old, ok := r.rules[key]
	if ok && strings.Join(old, " ") == strings.Join(rule, " ") && lifetime > 0 {
		return nil // a renewal
	}
	if ok {
		if err := iptablesNAT("-D", old); err != nil {
			return err
		}
		delete(r.rules, key)
	}
	if lifetime == 0 {
		return nil
	}
	if err := iptablesNAT("-A", rule); err != nil {
		return err
	}
	r.rules[key] = rule
	fmt.Printf("mapped %s -> %s\n", key, rule[len(rule)-1])
	return nil
}

func (r *labRouter) removeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rule := range r.rules {
		iptablesNAT("-D", rule)
	}
}

func iptablesNAT(verb string, rule []string) error {
	args := append([]string{"-t", "nat", verb}, rule...)
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// startLabRouter runs the port-mapping service in router namespace ns,
// on the router's LAN address lan (interface lanIf), answering with
// external as its external address and forwarding from interface wan.
// It stops with the test.
func startLabRouter(t testing.TB, ns, lan, external, wan, lanIf string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestHelperLabRouter$", "-test.v=false")
	cmd.Env = append(os.Environ(), labRouterEnv+"="+lan+","+external+","+wan+","+lanIf)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				ready <- sc.Text() == "router ready"
				first = false
				continue
			}
			if strings.HasPrefix(sc.Text(), "mapped ") {
				t.Logf("%s: %s", ns, sc.Text())
			}
		}
		if first {
			ready <- false
		}
		cmd.Wait()
		close(exited)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("port-mapping router in %s did not start: %s", ns, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("port-mapping router in %s: not ready within 10s: %s", ns, stderr.String())
	}
}

// UPnP IGD: the SSDP search targets answered, the one service offered.
const (
	ssdpAddr       = "239.255.255.250:1900"
	upnpWANIPConn1 = "urn:schemas-upnp-org:service:WANIPConnection:1"
)

// serveUPnP answers SSDP searches on interface lanIf and serves the
// device description and the WANIPConnection:1 control on the LAN
// address; stop ends both.
func (r *labRouter) serveUPnP(lanIf string) (stop func(), err error) {
	ifi, err := net.InterfaceByName(lanIf)
	if err != nil {
		return nil, err
	}
	group, _ := net.ResolveUDPAddr("udp4", ssdpAddr)
	ssdp, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		return nil, err
	}
	reply, err := net.ListenUDP("udp4", &net.UDPAddr{IP: r.lan})
	if err != nil {
		ssdp.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort(r.lan.String(), "0"))
	if err != nil {
		ssdp.Close()
		reply.Close()
		return nil, err
	}
	base := "http://" + ln.Addr().String() + "/"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rootDesc.xml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprintf(w, igdDescription, base)
	})
	mux.HandleFunc("POST /ctl/IPConn", r.handleSOAP)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := ssdp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := string(buf[:n])
			if !strings.HasPrefix(req, "M-SEARCH ") {
				continue
			}
			st := ""
			for _, line := range strings.Split(req, "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "ST") {
					st = strings.TrimSpace(v)
				}
			}
			switch st {
			case "ssdp:all", "upnp:rootdevice", "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
				"urn:schemas-upnp-org:device:WANConnectionDevice:1", upnpWANIPConn1:
			default:
				continue
			}
			resp := "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: " + base + "rootDesc.xml\r\n" +
				"SERVER: Linux UPnP/1.1 meshtalk-lab/1\r\nST: " + st + "\r\nUSN: uuid:6d657368-7461-6c6b-0000-000000000001::" + st + "\r\n\r\n"
			reply.WriteToUDP([]byte(resp), from)
		}
	}()
	return func() {
		ssdp.Close()
		reply.Close()
		srv.Close()
	}, nil
}

// igdDescription is the device description: an InternetGatewayDevice:1
// with one WANConnectionDevice:1 offering WANIPConnection:1; %s is the
// URL base.
const igdDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<URLBase>%s</URLBase>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>meshtalk lab router</friendlyName>
<manufacturer>meshtalk tests</manufacturer>
<modelName>lab router</modelName>
<UDN>uuid:6d657368-7461-6c6b-0000-000000000001</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<friendlyName>WAN</friendlyName>
<UDN>uuid:6d657368-7461-6c6b-0000-000000000002</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<friendlyName>WAN connection</friendlyName>
<UDN>uuid:6d657368-7461-6c6b-0000-000000000003</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/WANIPCn.xml</SCPDURL>
<controlURL>/ctl/IPConn</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
`

// soapArg reads one argument of a SOAP request by its element name.
var soapArg = regexp.MustCompile(`<(New[A-Za-z]+)>([^<]*)</New[A-Za-z]+>`)

// handleSOAP answers the WANIPConnection:1 actions go-libp2p's client
// calls: GetNATRSIPStatus, GetExternalIPAddress, AddPortMapping,
// DeletePortMapping.
func (r *labRouter) handleSOAP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, action, _ := strings.Cut(strings.Trim(req.Header.Get("SOAPAction"), `"`), "#")
	args := map[string]string{}
	for _, m := range soapArg.FindAllStringSubmatch(string(body), -1) {
		args[m[1]] = m[2]
	}
	out := ""
	switch action {
	case "GetNATRSIPStatus":
		out = "<NewRSIPAvailable>0</NewRSIPAvailable><NewNATEnabled>1</NewNATEnabled>"
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>" + r.external.String() + "</NewExternalIPAddress>"
	case "AddPortMapping", "DeletePortMapping":
		ext, _ := strconv.Atoi(args["NewExternalPort"])
		internal, _ := strconv.Atoi(args["NewInternalPort"])
		lease := uint32(1) // a lab's lease: mapPort keeps it until deleted
		client := net.ParseIP(args["NewInternalClient"])
		if action == "DeletePortMapping" {
			lease, client = 0, r.lan // only the protocol and external port count
		}
		proto := strings.ToLower(args["NewProtocol"])
		if ext <= 0 || ext > 65535 || client == nil || proto != "tcp" && proto != "udp" ||
			action == "AddPortMapping" && (internal <= 0 || internal > 65535) {
			http.Error(w, "bad mapping", http.StatusInternalServerError)
			return
		}
		if err := r.mapPort(proto, client, uint16(internal), uint16(ext), lease); err != nil {
			fmt.Fprintln(os.Stderr, "UPnP:", err)
			http.Error(w, "mapping failed", http.StatusInternalServerError)
			return
		}
	default:
		http.Error(w, "unknown action", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?>`+"\n"+`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`+
		`<u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`, action, upnpWANIPConn1, out, action)
}

// TestLabRouterNATPMP: the lab router's NAT-PMP responder answers the
// client go-libp2p uses (jackpal/go-nat-pmp) with its external address,
// maps a port with the real DNAT rule, and unmaps it. The nodes cannot
// use it yet (go-libp2p finds no NAT-PMP gateway on Linux: see
// TestHelperLabRouter), so it is checked here on its own.
func TestLabRouterNATPMP(t *testing.T) {
	l := newLab(t, "iptables")
	router, host := l.ns("pmp-r"), l.ns("pmp-h")
	l.link(router, "lan", "192.0.2.1/24", host, "eth0", "192.0.2.2/24")
	l.link(router, "wan", "203.0.113.60/24", l.ns("pmp-w"), "eth0", "203.0.113.61/24")
	startLabRouter(t, router, "192.0.2.1", "203.0.113.60", "wan", "lan")
	// The client runs in the host's namespace: this test's thread joins
	// it through a child process, the test binary in its client role.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", host, exe, "-test.run=^TestHelperNATPMPClient$")
	cmd.Env = append(os.Environ(), natPMPClientEnv+"=192.0.2.1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("NAT-PMP client: %v\n%s", err, out)
	}
	t.Logf("client:\n%s", out)
	if !strings.Contains(string(out), "external 203.0.113.60") || !strings.Contains(string(out), "mapped udp 4747 -> 40000") {
		t.Fatalf("unexpected answers:\n%s", out)
	}
	rules, err := exec.Command("ip", "netns", "exec", router, "iptables", "-t", "nat", "-S", "PREROUTING").CombinedOutput()
	if err != nil || !strings.Contains(string(rules), "--dport 40000 -j DNAT --to-destination 192.0.2.2:4747") {
		t.Fatalf("no DNAT rule for the mapping: %v\n%s", err, rules)
	}
}

// natPMPClientEnv marks the test binary started as the NAT-PMP client of
// TestLabRouterNATPMP; its value is the gateway.
const natPMPClientEnv = "MESHTALK_TEST_NATPMP_CLIENT"

// TestHelperNATPMPClient is not a test: it is the client side of
// TestLabRouterNATPMP, run in the host's namespace.
func TestHelperNATPMPClient(t *testing.T) {
	gw := os.Getenv(natPMPClientEnv)
	if gw == "" {
		t.Skip("the NAT-PMP client of TestLabRouterNATPMP, run as its subprocess")
	}
	c := natpmp.NewClientWithTimeout(net.ParseIP(gw), 5*time.Second)
	ext, err := c.GetExternalAddress()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("external %s\n", net.IP(ext.ExternalIPAddress[:]))
	m, err := c.AddPortMapping("udp", 4747, 40000, 60)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("mapped udp %d -> %d\n", m.InternalPort, m.MappedExternalPort)
}
