package proxy

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/imapedge/imapedge/proxy/imapwire"
)

// credentials are what the client proved itself with. They live only in
// memory for the backend login and are never logged.
type credentials struct {
	authzid string // PLAIN authorization identity, may be empty
	authcid string
	secret  string
	mech    string // LOGIN, PLAIN (client side) - for logs
}

// routingUser is the identity sessions are routed on: the authorization
// identity when present, else the authentication identity.
func (c credentials) routingUser() string {
	if c.authzid != "" {
		return c.authzid
	}
	return c.authcid
}

// loginServer is the server side of the SASL LOGIN mechanism
// (draft-murchison-sasl-login-00), which go-sasl no longer provides. An
// initial response, if any, is taken as the user name.
type loginServer struct {
	step     int
	user     string
	password string
}

func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.password = string(resp)
		l.step = 3
		return nil, true, nil
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

var errBadBase64 = errors.New("invalid base64")

func decodeSASL(b []byte) ([]byte, error) {
	if len(b) == 1 && b[0] == '=' {
		return []byte{}, nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Decode(out, b)
	if err != nil {
		return nil, errBadBase64
	}
	return out[:n], nil
}

// authenticate runs AUTHENTICATE PLAIN or LOGIN, with or without SASL-IR.
func (s *session) authenticate(cmd *imapwire.Command) (bool, *backendConn) {
	a := cmd.Args
	if len(a) < 1 || len(a) > 2 || a[0].Kind != imapwire.TokAtom || (len(a) == 2 && a[1].Kind != imapwire.TokAtom) {
		return s.bad(cmd, "AUTHENTICATE expects a mechanism and an optional initial response.")
	}
	if !s.loginAllowed() {
		s.respond(cmd.Tag, "NO", "PRIVACYREQUIRED", "Plaintext authentication disallowed on non-secure connections.")
		return false, nil
	}
	var cred credentials
	var srv sasl.Server
	var login *loginServer
	switch mech := strings.ToUpper(string(a[0].Value)); mech {
	case "PLAIN":
		srv = sasl.NewPlainServer(func(identity, username, password string) error {
			if username == "" {
				return errors.New("empty authentication identity")
			}
			cred = credentials{authzid: identity, authcid: username, secret: password, mech: "PLAIN"}
			return nil
		})
	case "LOGIN":
		login = &loginServer{}
		srv = login
	default:
		s.respond(cmd.Tag, "NO", "", "Unsupported authentication mechanism.")
		return false, nil
	}
	var resp []byte
	if len(a) == 2 {
		var err error
		if resp, err = decodeSASL(a[1].Value); err != nil {
			return s.bad(cmd, "Invalid base64 in initial response.")
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			return s.bad(cmd, "Invalid SASL response.")
		}
		if done {
			break
		}
		s.bw.WriteString("+ ")
		s.bw.WriteString(base64.StdEncoding.EncodeToString(challenge))
		s.bw.WriteString("\r\n")
		if s.flush() != nil {
			return true, nil
		}
		line, err := s.rd.ReadLine()
		if err != nil {
			var pe *imapwire.ProtocolError
			if errors.As(err, &pe) {
				return s.bad(cmd, pe.Msg)
			}
			if isTimeout(err) {
				s.setReason(reasonPreauthTimeout)
			}
			return true, nil
		}
		if len(line) == 1 && line[0] == '*' {
			s.respond(cmd.Tag, "BAD", "", "Authentication canceled.")
			return false, nil
		}
		if resp, err = decodeSASL(line); err != nil {
			return s.bad(cmd, "Invalid base64 in SASL response.")
		}
	}
	if login != nil {
		if login.user == "" {
			s.respond(cmd.Tag, "NO", "AUTHENTICATIONFAILED", "Authentication failed.")
			return false, nil
		}
		cred = credentials{authcid: login.user, secret: login.password, mech: "LOGIN"}
	}
	return false, s.login(cmd.Tag, cred)
}
