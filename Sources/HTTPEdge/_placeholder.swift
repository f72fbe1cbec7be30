enum _HTTPEdgePlaceholder {}
