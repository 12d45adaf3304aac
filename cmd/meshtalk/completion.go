package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshtalk/meshtalk/api"
)

// Shell completion: cobra's `meshtalk completion bash|zsh|fish` writes the
// script; the script asks `meshtalk __complete ...`, which calls the
// functions below. They ask the running node for friend names, group
// names and file IDs, and offer nothing, quietly, when no node runs.

// completionTimeout bounds one completion's question to the node: a
// shell waits on it.
const completionTimeout = 2 * time.Second

// addCompletions gives each command that names a friend, a group or a
// file the completion of its arguments, by position.
func (g *globals) addCompletions(root *cobra.Command) {
	friends, groups, convs, files := g.completer(friendNames), g.completer(groupNames), g.completer(convNames), g.completer(fileIDs)
	byCommand := map[string][]cobra.CompletionFunc{
		"send": {friends}, "history": {convs}, "read": {convs}, "ping": {friends}, "call": {friends},
		"friend accept": {friends}, "friend decline": {friends}, "friend remove": {friends}, "friend block": {friends},
		"friend show":  {friends},
		"group invite": {groups}, "group send": {groups}, "group members": {groups}, "group leave": {groups},
		"group add": {groups, friends}, "group kick": {groups, friends}, "group promote": {groups, friends},
		"group rename": {groups}, "group show": {groups},
		"file send": {friends}, "file get": {files}, "file cancel": {files},
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if fns, ok := byCommand[path]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) >= len(fns) {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return fns[len(args)](cmd, args, toComplete)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completer turns a list of the node's names into a completion function.
func (g *globals) completer(list func(context.Context, *api.Client) ([]cobra.Completion, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		var out []cobra.Completion
		if c, err := g.client(ctx); err == nil {
			all, _ := list(ctx, c)
			for _, s := range all {
				if strings.HasPrefix(strings.ToLower(s), strings.ToLower(toComplete)) {
					out = append(out, s)
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func friendNames(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
	friends, err := c.Friends(ctx, false)
	var out []cobra.Completion
	for _, f := range friends {
		out = append(out, cobra.CompletionWithDesc(orShort(f.Name, f.PeerID.String()), f.State))
	}
	return out, err
}

func groupNames(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
	groups, err := c.Groups(ctx)
	var out []cobra.Completion
	for _, gi := range groups {
		out = append(out, cobra.CompletionWithDesc(gi.Name, "group"))
	}
	return out, err
}

func convNames(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
	friends, err := friendNames(ctx, c)
	if err != nil {
		return nil, err
	}
	groups, err := groupNames(ctx, c)
	return append(friends, groups...), err
}

func fileIDs(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
	files, err := c.Files(ctx)
	var out []cobra.Completion
	for _, f := range files {
		if !f.Outgoing {
			out = append(out, cobra.CompletionWithDesc(f.ID[:16], f.Name))
		}
	}
	return out, err
}
