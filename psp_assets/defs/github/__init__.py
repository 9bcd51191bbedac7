"""GitHub: each plugin build published as a release in its client's organization (github.com or
Enterprise), and its source as a pull request to the client's repository."""
