package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"switchboard/middleware"
	"switchboard/models"
)

// createUser is `switchboard createuser --username U --email E [--staff]`;
// the password comes from stdin, or a hidden prompt on a terminal.
func createUser(ctx context.Context, cfg Config, logger *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("createuser", flag.ContinueOnError)
	fs.SetOutput(stdout)
	username := fs.String("username", "", "username (required)")
	email := fs.String("email", "", "email address")
	staff := fs.Bool("staff", false, "make the user staff")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *username == "" {
		return errors.New("createuser: --username is required")
	}
	password, err := readPassword(stdin, stdout)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB(db)
	users := models.NewUserStore(db, models.PasswordHasher{Cost: cfg.BcryptCost})
	u, err := users.Create(ctx, models.NewUser{Username: *username, Email: *email, Password: password, IsStaff: *staff})
	if err != nil {
		return fmt.Errorf("createuser: %w", err)
	}
	fmt.Fprintf(stdout, "created user %q (id %d, staff %v)\n", u.Username, u.ID, u.IsStaff)
	return nil
}

// readPassword reads one line; on a terminal it prompts twice without echo.
func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stdout, "Password (again): ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("passwords do not match")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("createuser: no password on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// setActive is `switchboard setactive U true|false`. Deactivation takes
// effect for tokens at once (every request checks the user); live sockets
// are closed through Redis or the local server (see revokeRemote).
func setActive(ctx context.Context, cfg Config, logger *slog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: switchboard setactive USERNAME true|false")
	}
	active, err := strconv.ParseBool(args[1])
	if err != nil {
		return fmt.Errorf("setactive: %q is not true or false", args[1])
	}
	db, err := openDB(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB(db)
	users := models.NewUserStore(db, models.PasswordHasher{Cost: cfg.BcryptCost})
	u, err := users.GetByUsername(ctx, args[0])
	if err != nil {
		return fmt.Errorf("setactive: %w", err)
	}
	if _, err := users.Update(ctx, u.ID, models.UserPatch{IsActive: &active}); err != nil {
		return fmt.Errorf("setactive: %w", err)
	}
	fmt.Fprintf(stdout, "user %q is now %s\n", u.Username, map[bool]string{true: "active", false: "inactive"}[active])
	if !active {
		return revokeRemote(ctx, cfg, logger, users, u.ID, middleware.ReasonUserInactive, stdout)
	}
	return nil
}
